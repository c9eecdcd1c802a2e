//! Metrics in the Prometheus text exposition format, written by hand (no exporter crate): a few
//! counters and histograms behind one mutex are all the server needs, and the format is simple
//! and stable. [`MeteredStore`] wraps the store: it times every call (store latency), measures
//! how late timers are claimed (timer lag), and feeds every committed event to the SSE channel.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use civicflow_engine::clock::Clock;
use civicflow_engine::store::{
    AuditCheckpointRecord, AuditEntry, AuditLeaf, AuditTree, BatchResults, CalendarYearRecord, Commit, CommitHint,
    IdempotencyRecord, InboxQuery, InstanceFilter, InstanceRecord, LateRecord, LateStep, MigrationPlanRecord,
    OpenStepRef, OpenStepRow, Page, PolicyRecord, PrincipalRecord, Published, SessionRecord, Store, StoreError,
    StoredEvent, TimerRecord, TokenRecord,
};

/// Bucket bounds of every histogram, in seconds: from half a millisecond (a store call) to a
/// week (a timer on a simulated clock moved far ahead).
const BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
    86400.0, 604800.0,
];

/// The metric families: name, type, help. Rendered in this order.
const FAMILIES: [(&str, &str, &str); 10] = [
    ("civicflow_commands_total", "counter", "Commands received through the API, by command and result."),
    ("civicflow_refusals_total", "counter", "Requests answered with a problem (4xx), by stable code."),
    ("civicflow_http_responses_total", "counter", "HTTP responses, by status code."),
    ("civicflow_timers_claimed_total", "counter", "Due timers claimed by the timer service."),
    ("civicflow_timer_lag_seconds", "histogram", "How late a timer is claimed after its due time."),
    ("civicflow_store_seconds", "histogram", "Latency of store calls, by operation."),
    ("civicflow_sse_clients", "gauge", "Clients connected to the event stream."),
    ("civicflow_instance_cache_entries", "gauge", "Instances the runtime keeps in memory for commands."),
    ("civicflow_instance_cache_bytes", "gauge", "Their estimated size (bounded by --instance-cache-mib)."),
    ("civicflow_instance_cache_lookups_total", "counter", "Commands' lookups in the instance cache, by result."),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` to a counter (or gauge).
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        if let Ok(mut r) = self.registry.lock() {
            *r.counters.entry((name, own(labels))).or_default() += by;
        }
    }

    /// Sets a gauge (or a counter kept elsewhere) to `value`.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        if let Ok(mut r) = self.registry.lock() {
            r.counters.insert((name, own(labels)), value);
        }
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Records an observation, in seconds.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        if let Ok(mut r) = self.registry.lock() {
            let h = r.histograms.entry((name, own(labels))).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    if let Some(c) = h.counts.get_mut(i) {
                        *c += 1;
                    }
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// The text exposition (format version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(r) = self.registry.lock() else { return out };
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} {kind}");
            for ((name, labels), value) in r.counters.iter().filter(|((n, _), _)| *n == family) {
                let _ = writeln!(out, "{name}{} {value}", label_text(labels, None));
            }
            for ((name, labels), h) in r.histograms.iter().filter(|((n, _), _)| *n == family) {
                for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                    let _ = writeln!(out, "{name}_bucket{} {count}", label_text(labels, Some(&bound.to_string())));
                }
                let _ = writeln!(out, "{name}_bucket{} {}", label_text(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
            }
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A [`Store`] that measures the store it wraps and publishes what it commits.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    committed: broadcast::Sender<StoredEvent>,
    /// The last seq published on this node's stream, per instance: a hint of another node's
    /// commit publishes only what this node has not (issue 9.6).
    published: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl MeteredStore {
    pub fn new(
        inner: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        committed: broadcast::Sender<StoredEvent>,
    ) -> Self {
        MeteredStore { inner, metrics, clock, committed, published: Default::default() }
    }

    fn time(&self, op: &'static str, started: Instant) {
        self.metrics.observe("civicflow_store_seconds", &[("op", op)], secs(started.elapsed()));
    }

    fn publish(&self, events: &[StoredEvent]) {
        // Nobody streams: nothing to send or to remember (the commit path stays as cheap as
        // before the stream reached several nodes).
        if self.committed.receiver_count() == 0 {
            return;
        }
        let Ok(mut published) = self.published.lock() else { return };
        for e in events {
            let last = match published.get_mut(&e.instance) {
                Some(last) => last,
                None => published.entry(e.instance.clone()).or_insert(0),
            };
            if e.seq <= *last {
                continue; // already on this node's stream
            }
            *last = e.seq;
            // No subscriber is not an error: the stream is a convenience, the log is the record.
            let _ = self.committed.send(e.clone());
        }
    }

    /// This node's commit: first what other nodes committed to the instance before it and this
    /// node's stream has not shown yet (their hints may come later), then the commit's events.
    async fn publish_committed(&self, events: &[StoredEvent]) {
        let Some(first) = events.first() else { return };
        if self.committed.receiver_count() > 0 {
            let last = self.published.lock().ok().and_then(|p| p.get(&first.instance).copied()).unwrap_or(0);
            if last > 0 && first.seq > last + 1 {
                let missing = u32::try_from(first.seq - last - 1).unwrap_or(u32::MAX).min(1_000);
                if let Ok(gap) = self.inner.events(&first.instance, last, missing).await {
                    self.publish(&gap);
                }
            }
        }
        self.publish(events);
    }

    /// Issue 9.6: another node committed events of `hint.instance` after `hint.after`: read
    /// them from the store (the truth; the hint only says where to look) and stream what this
    /// node has not.
    pub async fn publish_hinted(&self, hint: &CommitHint) {
        if self.committed.receiver_count() == 0 {
            return;
        }
        match self.inner.events(&hint.instance, hint.after, 1_000).await {
            Ok(events) => self.publish(&events),
            Err(e) => {
                tracing::warn!(instance = %hint.instance, error = %e, "another node's events did not reach the stream")
            }
        }
    }

    /// R0.3: a commit that opened the next cycle created that instance too; its first events
    /// reach the stream after the commit's own (read back: the store returns only the latter).
    async fn publish_spawned(&self, spawned: Option<String>) {
        let Some(id) = spawned else { return };
        if self.committed.receiver_count() == 0 {
            return;
        }
        match self.inner.events(&id, 0, 1_000).await {
            Ok(events) => self.publish(&events),
            Err(e) => tracing::warn!(instance = %id, error = %e, "the next cycle's events did not reach the stream"),
        }
    }
}

fn spawned(commit: &Commit) -> Option<String> {
    commit.spawn.as_ref().map(|s| s.instance.id.clone())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[async_trait]
impl Store for MeteredStore {
    async fn publish_policy(&self, policy: PolicyRecord) -> Result<Published, StoreError> {
        let t = Instant::now();
        let r = self.inner.publish_policy(policy).await;
        self.time("publish_policy", t);
        r
    }

    async fn get_policy(&self, name: &str, hash: Option<&str>) -> Result<Option<PolicyRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_policy(name, hash).await;
        self.time("get_policy", t);
        r
    }

    async fn load_states(&self, ids: &[String]) -> Result<Vec<civicflow_engine::store::LoadedState>, StoreError> {
        let t = Instant::now();
        let r = self.inner.load_states(ids).await;
        self.time("load_states", t);
        r
    }

    async fn latest_policy_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let t = Instant::now();
        let r = self.inner.latest_policy_hash(name).await;
        self.time("latest_policy_hash", t);
        r
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list_policies().await;
        self.time("list_policies", t);
        r
    }

    async fn policy_versions(&self, name: &str) -> Result<Vec<PolicyRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.policy_versions(name).await;
        self.time("policy_versions", t);
        r
    }

    async fn create_instance(&self, instance: InstanceRecord, first: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        let t = Instant::now();
        let r = self.inner.create_instance(instance, first).await;
        self.time("create_instance", t);
        if let Ok(events) = &r {
            self.publish(events);
        }
        r
    }

    async fn commit(&self, commit: Commit) -> Result<Vec<StoredEvent>, StoreError> {
        let t = Instant::now();
        let next = spawned(&commit);
        let r = self.inner.commit(commit).await;
        self.time("commit", t);
        if let Ok(events) = &r {
            self.publish_committed(events).await;
            self.publish_spawned(next).await;
        }
        r
    }

    fn batches_in_flight(&self) -> usize {
        self.inner.batches_in_flight()
    }

    async fn commit_many(&self, commits: Vec<Commit>) -> BatchResults {
        let t = Instant::now();
        let next: Vec<Option<String>> = commits.iter().map(spawned).collect();
        let (results, commits) = self.inner.commit_many(commits).await;
        self.time("commit_many", t);
        for (r, next) in results.iter().zip(next) {
            if let Ok(events) = r {
                self.publish_committed(events).await;
                self.publish_spawned(next).await;
            }
        }
        (results, commits)
    }

    async fn load_instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.load_instance(id).await;
        self.time("load_instance", t);
        r
    }

    async fn load_instances(&self, ids: &[String]) -> Result<Vec<InstanceRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.load_instances(ids).await;
        self.time("load_instances", t);
        r
    }

    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Page<InstanceRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list_instances(filter).await;
        self.time("list_instances", t);
        r
    }

    async fn inbox(&self, query: &InboxQuery) -> Result<Page<OpenStepRef>, StoreError> {
        let t = Instant::now();
        let r = self.inner.inbox(query).await;
        self.time("inbox", t);
        r
    }

    async fn open_steps_built(&self) -> Result<bool, StoreError> {
        self.inner.open_steps_built().await
    }

    async fn put_open_steps(&self, instance: &str, version: u64, rows: &[OpenStepRow]) -> Result<bool, StoreError> {
        self.inner.put_open_steps(instance, version, rows).await
    }

    async fn mark_open_steps_built(&self) -> Result<(), StoreError> {
        self.inner.mark_open_steps_built().await
    }

    async fn events(&self, instance: &str, after_seq: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let t = Instant::now();
        let r = self.inner.events(instance, after_seq, limit).await;
        self.time("events", t);
        r
    }

    async fn events_until(&self, instance: &str, at: DateTime<Utc>) -> Result<Vec<StoredEvent>, StoreError> {
        let t = Instant::now();
        let r = self.inner.events_until(instance, at).await;
        self.time("events_until", t);
        r
    }

    async fn get_idempotency(&self, principal: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_idempotency(principal, key).await;
        self.time("get_idempotency", t);
        r
    }

    async fn next_timer_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t = Instant::now();
        let r = self.inner.next_timer_at().await;
        self.time("next_timer_at", t);
        r
    }

    async fn claim_due_timers(
        &self,
        owner: &str,
        now: Option<DateTime<Utc>>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<TimerRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.claim_due_timers(owner, now, lease, limit).await;
        self.time("claim_due_timers", t);
        if let Ok(timers) = &r {
            let now = self.clock.now();
            for timer in timers {
                self.metrics.inc("civicflow_timers_claimed_total", &[]);
                let lag = (now - timer.due_at).to_std().map(secs).unwrap_or(0.0);
                self.metrics.observe("civicflow_timer_lag_seconds", &[], lag);
            }
        }
        r
    }

    async fn pending_timers(&self, instance: &str) -> Result<Vec<TimerRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.pending_timers(instance).await;
        self.time("pending_timers", t);
        r
    }

    async fn verify(&self, instance: &str) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.verify(instance).await;
        self.time("verify", t);
        r
    }

    async fn counter(&self, key: &str) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.counter(key).await;
        self.time("counter", t);
        r
    }

    async fn checkpoint(&self) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.checkpoint().await;
        self.time("checkpoint", t);
        r
    }

    async fn create_token(
        &self,
        principal: PrincipalRecord,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.create_token(principal, token_hash, expires_at).await;
        self.time("create_token", t);
        r
    }

    async fn put_session(&self, session: SessionRecord, cap: usize) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put_session(session, cap).await;
        self.time("put_session", t);
        r
    }

    async fn get_session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.get_session(id_hash).await;
        self.time("get_session", t);
        r
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.delete_session(id_hash).await;
        self.time("delete_session", t);
        r
    }

    async fn advance_simulated_clock(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        self.inner.advance_simulated_clock(to).await
    }

    async fn simulated_clock(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.simulated_clock().await
    }

    async fn commit_hints(&self) -> Result<Option<tokio::sync::mpsc::Receiver<CommitHint>>, StoreError> {
        self.inner.commit_hints().await
    }

    async fn principal_changes(&self) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        self.inner.principal_changes().await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list_tokens().await;
        self.time("list_tokens", t);
        r
    }

    async fn revoke_tokens(&self, principal: &str, id: Option<&str>) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.revoke_tokens(principal, id).await;
        self.time("revoke_tokens", t);
        r
    }

    async fn principal_by_token_hash(&self, token_hash: &str) -> Result<Option<PrincipalRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.principal_by_token_hash(token_hash).await;
        self.time("principal_by_token_hash", t);
        r
    }

    async fn put_calendar_year(&self, year: CalendarYearRecord) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put_calendar_year(year).await;
        self.time("put_calendar_year", t);
        r
    }

    async fn calendar_years(&self) -> Result<Vec<CalendarYearRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.calendar_years().await;
        self.time("calendar_years", t);
        r
    }

    async fn put_migration_plan(&self, plan: MigrationPlanRecord) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put_migration_plan(plan).await;
        self.time("put_migration_plan", t);
        r
    }

    async fn backfill_audit_log(&self, limit: u32) -> Result<u64, StoreError> {
        let t = Instant::now();
        let r = self.inner.backfill_audit_log(limit).await;
        self.time("backfill_audit_log", t);
        r
    }

    async fn audit_tree(&self) -> Result<AuditTree, StoreError> {
        let t = Instant::now();
        let r = self.inner.audit_tree().await;
        self.time("audit_tree", t);
        r
    }

    async fn audit_leaves(&self, from: u64, limit: u32) -> Result<Vec<AuditLeaf>, StoreError> {
        let t = Instant::now();
        let r = self.inner.audit_leaves(from, limit).await;
        self.time("audit_leaves", t);
        r
    }

    async fn audit_entries(&self, from: u64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let t = Instant::now();
        let r = self.inner.audit_entries(from, limit).await;
        self.time("audit_entries", t);
        r
    }

    async fn audit_leaves_of(&self, instance: &str) -> Result<Vec<AuditLeaf>, StoreError> {
        let t = Instant::now();
        let r = self.inner.audit_leaves_of(instance).await;
        self.time("audit_leaves_of", t);
        r
    }

    async fn put_audit_checkpoint(&self, checkpoint: AuditCheckpointRecord) -> Result<bool, StoreError> {
        let t = Instant::now();
        let r = self.inner.put_audit_checkpoint(checkpoint).await;
        self.time("put_audit_checkpoint", t);
        r
    }

    async fn latest_audit_checkpoint(&self) -> Result<Option<AuditCheckpointRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.latest_audit_checkpoint().await;
        self.time("latest_audit_checkpoint", t);
        r
    }

    async fn late_steps(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LateRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.late_steps(from, to, limit).await;
        self.time("late_steps", t);
        r
    }

    async fn late_steps_built(&self) -> Result<bool, StoreError> {
        let t = Instant::now();
        let r = self.inner.late_steps_built().await;
        self.time("late_steps_built", t);
        r
    }

    async fn instances_with_breaches(&self) -> Result<Vec<String>, StoreError> {
        let t = Instant::now();
        let r = self.inner.instances_with_breaches().await;
        self.time("instances_with_breaches", t);
        r
    }

    async fn put_late_steps(&self, instance: &str, rows: &[LateStep]) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put_late_steps(instance, rows).await;
        self.time("put_late_steps", t);
        r
    }

    async fn mark_late_steps_built(&self) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.mark_late_steps_built().await;
        self.time("mark_late_steps_built", t);
        r
    }

    async fn event_leaf_indexes(&self, instance: &str) -> Result<Vec<(u64, Option<u64>)>, StoreError> {
        let t = Instant::now();
        let r = self.inner.event_leaf_indexes(instance).await;
        self.time("event_leaf_indexes", t);
        r
    }

    async fn migration_plan(&self, id: &str) -> Result<Option<MigrationPlanRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.migration_plan(id).await;
        self.time("migration_plan", t);
        r
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>, StoreError> {
        let t = Instant::now();
        let r = self.inner.list_principals().await;
        self.time("list_principals", t);
        r
    }

    async fn put_idempotency(&self, record: IdempotencyRecord) -> Result<(), StoreError> {
        let t = Instant::now();
        let r = self.inner.put_idempotency(record).await;
        self.time("put_idempotency", t);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_in_the_text_format() {
        let m = Metrics::new();
        m.inc("civicflow_refusals_total", &[("code", "F006")]);
        m.inc("civicflow_refusals_total", &[("code", "F006")]);
        m.observe("civicflow_store_seconds", &[("op", "commit")], 0.003);
        let text = m.render();
        assert!(text.contains("# TYPE civicflow_refusals_total counter\n"), "{text}");
        assert!(text.contains("civicflow_refusals_total{code=\"F006\"} 2\n"), "{text}");
        assert!(text.contains("civicflow_store_seconds_bucket{op=\"commit\",le=\"0.0025\"} 0\n"), "{text}");
        assert!(text.contains("civicflow_store_seconds_bucket{op=\"commit\",le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("civicflow_store_seconds_bucket{op=\"commit\",le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("civicflow_store_seconds_count{op=\"commit\"} 1\n"), "{text}");
    }
}
