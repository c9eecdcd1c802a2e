//! Rate limits and caps (issue 9.3): what one address, one principal, one stream of failed
//! sign-ins may cost the server. Each limit answers 429 `RATE_LIMITED` (or
//! `STREAMS_LIMITED`) as a problem with `Retry-After`, before any work is done.
//!
//! The counting is `governor`'s GCRA (one cell per period, a burst on top), keyed per address or
//! principal; idle keys are dropped every minute ([`Limiter::tidy`]) so the tables do not grow
//! with every address ever seen.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::problem::ApiError;
use super::AppState;

/// One limit: a request costs one cell, a cell comes back every `period`, at most `burst` are
/// saved up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub period: Duration,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

/// The limits of one server.
#[derive(Clone, Copy, Debug)]
pub struct RateConfig {
    /// Every request from one address (before authentication).
    pub per_address: Rate,
    /// Every authenticated request of one principal, from wherever.
    pub per_principal: Rate,
    /// Failed authentications (bad bearer tokens, failed sign-ins) from one address.
    pub auth_failures: Rate,
    /// Event streams open at once for one principal.
    pub streams_per_principal: usize,
    /// Event streams open at once in all.
    pub streams_total: usize,
    /// Web sessions of one principal; signing in once more ends its oldest.
    pub sessions_per_principal: usize,
}

impl Default for RateConfig {
    /// 200 requests a second per address and per principal with bursts of 600, 20 failed sign-ins
    /// then one every 3 s, 16 streams per principal and 1,024 in all, 16 sessions per principal.
    fn default() -> Self {
        RateConfig {
            per_address: Rate { period: Duration::from_millis(5), burst: 600 },
            per_principal: Rate { period: Duration::from_millis(5), burst: 600 },
            auth_failures: Rate { period: Duration::from_secs(3), burst: 20 },
            streams_per_principal: 16,
            streams_total: 1024,
            sessions_per_principal: 16,
        }
    }
}

impl RateConfig {
    /// These limits with `per_second` requests a second and bursts of `burst` for each address
    /// and each principal, and `failed_auth_burst` failed authentications before the 3 s pace
    /// (`serve --requests-per-second`, `--request-burst`, `--failed-auth-burst`).
    pub fn with_requests(self, per_second: u32, burst: u32, failed_auth_burst: u32) -> Self {
        let period = Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)));
        let requests = Rate { period, burst };
        RateConfig {
            per_address: requests,
            per_principal: requests,
            auth_failures: Rate { burst: failed_auth_burst, ..self.auth_failures },
            ..self
        }
    }

    /// No limit that a benchmark or a test of something else could meet: a billion requests a
    /// second, streams and sessions by the million.
    pub fn unlimited() -> Self {
        let rate = Rate { period: Duration::from_nanos(1), burst: u32::MAX };
        RateConfig {
            per_address: rate,
            per_principal: rate,
            auth_failures: rate,
            streams_per_principal: 1_000_000,
            streams_total: 1_000_000,
            sessions_per_principal: 1_000_000,
        }
    }
}

/// The peer's address as the limits see it (the unspecified address when the server was not
/// reached through a socket, as in unit tests of the router).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerIp(pub IpAddr);

/// The limiters of one server.
pub struct Limiter {
    pub config: RateConfig,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_principal: DefaultKeyedRateLimiter<String>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    streams: Mutex<HashMap<String, usize>>,
    streams_open: AtomicUsize,
}

impl Limiter {
    pub fn new(config: RateConfig) -> Self {
        Limiter {
            config,
            by_address: RateLimiter::keyed(config.per_address.quota()),
            by_principal: RateLimiter::keyed(config.per_principal.quota()),
            failures: RateLimiter::keyed(config.auth_failures.quota()),
            streams: Mutex::new(HashMap::new()),
            streams_open: AtomicUsize::new(0),
        }
    }

    /// One more request from `ip`.
    pub fn address(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.by_address.check_key(&ip).map_err(|w| limited(wait(&w), "requests from this address"))
    }

    /// One more request of `principal`.
    pub fn principal(&self, principal: &str) -> Result<(), ApiError> {
        self.by_principal
            .check_key(&principal.to_string())
            .map_err(|w| limited(wait(&w), "requests with this principal's token"))
    }

    /// One more failed authentication from `ip`: `Some(429)` once they are too many, to answer
    /// instead of 401 (a guesser learns nothing more, and slowly).
    pub fn failed_auth(&self, ip: IpAddr) -> Option<ApiError> {
        self.failures.check_key(&ip).err().map(|w| limited(wait(&w), "failed authentications from this address"))
    }

    /// Opens an event stream for `principal`, under both caps; the permit closes it on drop.
    pub fn open_stream(self: &Arc<Self>, principal: &str) -> Result<StreamPermit, ApiError> {
        let mut streams = self.streams.lock().map_err(|_| ApiError::internal("the stream table is poisoned"))?;
        let mine = streams.get(principal).copied().unwrap_or(0);
        if mine >= self.config.streams_per_principal {
            return Err(streams_limited(format!(
                "this principal has {mine} event streams open (at most {}); close one first",
                self.config.streams_per_principal
            )));
        }
        if self.streams_open.load(Ordering::SeqCst) >= self.config.streams_total {
            return Err(streams_limited(format!(
                "the server has {} event streams open, its most; try again shortly",
                self.config.streams_total
            )));
        }
        streams.insert(principal.to_string(), mine + 1);
        self.streams_open.fetch_add(1, Ordering::SeqCst);
        Ok(StreamPermit { limiter: self.clone(), principal: principal.to_string() })
    }

    /// Event streams open now, in all.
    pub fn streams_open(&self) -> usize {
        self.streams_open.load(Ordering::SeqCst)
    }

    /// Forgets keys whose limits are back to full, and gives their memory back.
    pub fn tidy(&self) {
        for limiter in [&self.by_address, &self.failures] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.by_principal.retain_recent();
        self.by_principal.shrink_to_fit();
    }
}

/// An open event stream, counted until dropped.
pub struct StreamPermit {
    limiter: Arc<Limiter>,
    principal: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.limiter.streams.lock() {
            if let Some(n) = streams.get_mut(&self.principal) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    streams.remove(&self.principal);
                }
            }
        }
        self.limiter.streams_open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wait(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// 429 `RATE_LIMITED` with the seconds to wait (rounded up, at least 1).
fn limited(wait: Duration, what: &str) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = u32::try_from(seconds.max(1)).unwrap_or(u32::MAX);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        crate::http::codes::ProblemCode::RateLimited.as_str(),
        format!("too many {what}; try again in {seconds} s"),
    );
    e.retry_after = Some(seconds);
    e
}

fn streams_limited(detail: String) -> ApiError {
    let mut e =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, crate::http::codes::ProblemCode::StreamsLimited.as_str(), detail);
    e.retry_after = Some(5);
    e
}

/// The per-address limit, in front of everything but `/healthz`; records the peer's address
/// for the handlers after it ([`PeerIp`]).
pub async fn by_address(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let ip =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    request.extensions_mut().insert(PeerIp(ip));
    if request.uri().path() != "/healthz" {
        if let Err(e) = state.limiter.address(ip) {
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_set_the_request_rates_and_the_failed_authentication_burst() {
        let default = RateConfig::default();
        let same = default.with_requests(200, 600, 20);
        assert_eq!(
            (same.per_address, same.per_principal, same.auth_failures),
            (default.per_address, default.per_principal, default.auth_failures)
        );
        let set = default.with_requests(1000, 50, 3);
        assert_eq!(set.per_address, Rate { period: Duration::from_millis(1), burst: 50 });
        assert_eq!(set.per_principal, Rate { period: Duration::from_millis(1), burst: 50 });
        assert_eq!(set.auth_failures, Rate { period: Duration::from_secs(3), burst: 3 });
        assert_eq!((set.streams_per_principal, set.streams_total, set.sessions_per_principal), (16, 1024, 16));
    }
}
