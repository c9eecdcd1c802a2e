//! The timer service of the runtime: claiming due timers, firing them through the group
//! committer, and sleeping until the next one falls due (issue 10.5).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Runtime, RuntimeError, FIRE_CONCURRENCY};
use crate::core::{Actor, Command, TimerKind};
use crate::store::{StoreError, TimerRecord};

/// Timers claimed a round by [`Runtime::fire_all_due`], as many as fire at once. 1,024 a round
/// (256 in flight) was tried: 10,000 over HTTP on SQLite fired ~10 % sooner, but 100,000 on two
/// PostgreSQL nodes took 34.7 s instead of 20.6 s (BENCHMARKS.md, "Issue 10, stop 25").
const CLAIM_BATCH: u32 = 256;

impl Runtime {
    /// Claims due timers and fires them; returns how many fired (changed state or not).
    /// Timers of one instance fire in order; different instances fire concurrently.
    pub async fn fire_due(self: &Arc<Self>, limit: u32, lease: Duration) -> Result<usize, RuntimeError> {
        let now = if self.clock.is_simulated() { Some(self.clock.now()) } else { None };
        let claimed = self.store.claim_due_timers(&self.node, now, lease, limit).await?;
        let mut by_instance: BTreeMap<String, Vec<TimerRecord>> = BTreeMap::new();
        for t in claimed {
            by_instance.entry(t.instance.clone()).or_default().push(t);
        }
        self.warm_cache(by_instance.keys()).await;
        let mut fired = 0;
        let mut groups = by_instance.into_values();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            while tasks.len() < FIRE_CONCURRENCY {
                let Some(group) = groups.next() else { break };
                let rt = self.clone();
                tasks.spawn(async move { rt.fire_group(group).await });
            }
            match tasks.join_next().await {
                Some(Ok(result)) => fired += result?,
                Some(Err(e)) => return Err(RuntimeError::Corrupt(format!("timer task failed: {e}"))),
                None => break,
            }
        }
        Ok(fired)
    }

    /// Issue 10.5: reads the instances of a batch of claimed timers that the cache does not hold
    /// in one statement, so that their firings do not each read the store.
    async fn warm_cache(&self, ids: impl Iterator<Item = &String>) {
        let missing: Vec<String> = ids.filter(|id| self.cache.peek(id).is_none()).cloned().collect();
        if missing.is_empty() {
            return;
        }
        // One that cannot be read (a snapshot that does not parse) is reported by its firing's
        // own load; the others still fire.
        let Ok(states) = self.store.load_states(&missing).await else { return };
        for loaded in states {
            self.cache.put_loaded(loaded);
        }
    }

    async fn fire_group(&self, timers: Vec<TimerRecord>) -> Result<usize, RuntimeError> {
        let mut fired = 0;
        for t in timers {
            let kind: TimerKind = match serde_json::from_value(t.payload.get("kind").cloned().unwrap_or_default()) {
                Ok(k) => k,
                Err(e) => return Err(RuntimeError::Corrupt(format!("timer {}: {e}", t.id))),
            };
            let command = Command::Fire { node: t.node.clone(), kind, at: t.due_at };
            let system = Actor { principal: "timer".into(), office: String::new(), role: String::new() };
            match self.run(&t.instance, &command, &system, Some((t.id, t.fence)), None, None).await {
                Ok(_) => fired += 1,
                // Another node took over an expired lease and fired it: nothing to do.
                Err(RuntimeError::Store(StoreError::TimerLost { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(fired)
    }

    /// Fires timers until none is due (used after moving a simulated clock). One round at a
    /// time in this process: when it returns, every timer due by the clock's time when it began
    /// has fired, including those another round (the timer service) had claimed.
    pub async fn fire_all_due(self: &Arc<Self>) -> Result<usize, RuntimeError> {
        let _round = self.firing.lock().await;
        let mut total = 0;
        loop {
            let n = self.fire_due(CLAIM_BATCH, Duration::from_secs(30)).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// A commit of this runtime created a timer due at `at`: wakes the timer service if it
    /// meant to sleep past it.
    pub(super) fn timer_planned(&self, at: Option<DateTime<Utc>>) {
        let Some(at) = at else { return };
        if at.timestamp_micros() < self.next_wake.load(std::sync::atomic::Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    /// How long the timer service may sleep after a round: until the earliest timer falls due
    /// or lease expires (by the store), at most `interval` (timers other nodes create, a clock
    /// that moved), at least a millisecond. A simulated clock's instants are not the wall
    /// clock's: with one it sleeps `interval` (the clock's mover fires what it makes due).
    async fn sleep_for(&self, interval: Duration) -> Duration {
        if self.clock.is_simulated() {
            return interval;
        }
        match self.store.next_timer_at().await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default().clamp(Duration::from_millis(1), interval),
            Ok(None) => interval,
            Err(e) => {
                eprintln!("timer service: {e}");
                interval
            }
        }
    }

    /// Runs the timer service until `stop` resolves: fires what is due, then sleeps until the
    /// next timer falls due (issue 10.5: no polling lag), at most `interval`, woken early when
    /// this runtime commits a timer due sooner.
    pub async fn timer_loop(self: Arc<Self>, interval: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        use std::sync::atomic::Ordering;
        loop {
            if self.calendar_check_due() {
                if let Err(e) = self.refresh_calendar_years().await {
                    eprintln!("calendar refresh: {e}");
                }
            }
            // Timers committed during the round are seen by the query after it: no bell.
            self.next_wake.store(i64::MIN, Ordering::Release);
            let fired = self.fire_all_due().await;
            // Those committed from the query on ring it (at worst one round more).
            self.next_wake.store(i64::MAX, Ordering::Release);
            let wait = match fired {
                Ok(_) => self.sleep_for(interval).await,
                Err(e) => {
                    // Not again at once: what failed may still be due.
                    eprintln!("timer service: {e}");
                    interval
                }
            };
            let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            self.next_wake.store(until.timestamp_micros(), Ordering::Release);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}
