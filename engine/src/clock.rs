//! Clocks: the only place the runtime learns what time it is. The core never reads one; the
//! runtime asks its `Clock` and passes `now` in.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Whether time is simulated (rehearsals, demos, tests): then the database's clock is not
    /// used to judge which timers are due.
    fn is_simulated(&self) -> bool {
        false
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to, and only forward.
#[derive(Debug)]
pub struct SimulatedClock {
    now: Mutex<DateTime<Utc>>,
}

impl SimulatedClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        SimulatedClock { now: Mutex::new(start) }
    }

    /// Moves the clock to `to`; refuses to go back in time (timers already fired would lie).
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let mut now = self.now.lock().map_err(|_| "the clock's lock is poisoned".to_string())?;
        if to < *now {
            return Err(format!(
                "the simulated clock is at {}; it cannot go back to {}",
                now.to_rfc3339(),
                to.to_rfc3339()
            ));
        }
        *now = to;
        Ok(to)
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|n| *n).unwrap_or_else(|p| *p.into_inner())
    }
    fn is_simulated(&self) -> bool {
        true
    }
}
