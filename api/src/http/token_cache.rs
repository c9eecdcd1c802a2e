//! Issue 10.4: principals by token hash, kept for a moment, so that a request does not read the
//! store to authenticate (at a few thousand requests a second that read was one of the last
//! store reads an approval made).
//!
//! What a revocation costs in freshness: one made through this node (`DELETE
//! /v1/admin/tokens/…`), or a principal's roles replaced through it (`POST /v1/admin/tokens`),
//! forgets the principal at once; on PostgreSQL one made on another node or by the CLI does too,
//! as soon as the database's notification arrives (`Store::principal_changes`); on SQLite the
//! CLI's, and everywhere a token's expiry, are honoured within the TTL ([`TOKEN_CACHE_TTL`] by
//! default). Only tokens that authenticated are
//! kept, so unknown tokens cannot fill it; it holds at most [`MAX_ENTRIES`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use civicflow_engine::store::PrincipalRecord;

/// How long a token's principal is trusted without asking the store again.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most tokens kept; past it, stale entries go, then everything if none is stale.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (PrincipalRecord, Instant)>>,
    ttl: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::with_ttl(TOKEN_CACHE_TTL)
    }
}

impl TokenCache {
    /// A cache that trusts what the store answered for `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        TokenCache { entries: Mutex::default(), ttl }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (PrincipalRecord, Instant)>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The principal of a token hash read less than [`TOKEN_CACHE_TTL`] ago.
    pub fn get(&self, token_hash: &str) -> Option<PrincipalRecord> {
        self.get_at(token_hash, Instant::now())
    }

    fn get_at(&self, token_hash: &str, now: Instant) -> Option<PrincipalRecord> {
        let entries = self.lock();
        let (principal, read_at) = entries.get(token_hash)?;
        (now.saturating_duration_since(*read_at) < self.ttl).then(|| principal.clone())
    }

    /// Keeps what the store answered for a token hash.
    pub fn put(&self, token_hash: &str, principal: PrincipalRecord) {
        self.put_at(token_hash, principal, Instant::now());
    }

    fn put_at(&self, token_hash: &str, principal: PrincipalRecord, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(token_hash) {
            let ttl = self.ttl;
            entries.retain(|_, (_, read_at)| now.saturating_duration_since(*read_at) < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(token_hash.to_string(), (principal, now));
    }

    /// Forgets every token of a principal (revoked, or its roles replaced).
    pub fn forget_principal(&self, name: &str) {
        self.lock().retain(|_, (p, _)| p.name != name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn principal(name: &str) -> PrincipalRecord {
        PrincipalRecord {
            name: name.into(),
            office: "街道办事处".into(),
            roles: vec!["审批人".into()],
            created_at: Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_principal_is_trusted_for_the_ttl_and_forgotten_when_revoked_here() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        cache.put_at("h1", principal("王"), t0);
        cache.put_at("h2", principal("王"), t0);
        cache.put_at("h3", principal("李"), t0);
        assert_eq!(cache.get_at("h1", t0 + Duration::from_millis(999)).map(|p| p.name), Some("王".into()));
        assert_eq!(cache.get_at("h1", t0 + TOKEN_CACHE_TTL), None, "read a TTL ago: ask the store");
        assert_eq!(cache.get_at("unknown", t0), None);
        cache.forget_principal("王");
        assert_eq!((cache.get_at("h1", t0), cache.get_at("h2", t0)), (None, None));
        assert_eq!(cache.get_at("h3", t0).map(|p| p.name), Some("李".into()));
    }

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES {
            cache.put_at(&format!("old{i}"), principal("王"), t0);
        }
        // Past the bound, stale entries go first.
        let later = t0 + TOKEN_CACHE_TTL;
        cache.put_at("new", principal("李"), later);
        assert_eq!(cache.lock().len(), 1);
        // Past the bound with every entry fresh, the cache starts over.
        for i in 0..MAX_ENTRIES - 1 {
            cache.put_at(&format!("fresh{i}"), principal("王"), later);
        }
        assert_eq!(cache.lock().len(), MAX_ENTRIES);
        cache.put_at("one more", principal("李"), later);
        assert_eq!(cache.lock().len(), 1);
        assert_eq!(cache.get_at("one more", later).map(|p| p.name), Some("李".into()));
    }
}
