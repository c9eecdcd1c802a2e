//! R0.2: adding a working-day calendar year while the server runs.
//!
//! The year is checked, stored (table `calendar_years`, so a restart keeps it), swapped into the
//! runtime's calendar, and then every running instance with a period waiting for that year is
//! told through the core (`Command::CalendarAdded`): the instance records `CalendarApplied` in
//! its own history (the notice's title and date, who added the year, the computed instant), and
//! the same commit creates the deadline's timers, as for any command.
//!
//! Several nodes: a year added through one node is in the store; every other node's timer
//! service looks for years it has not swapped in (or that were replaced since) every
//! [`CALENDAR_REFRESH`] and swaps them in, then tells the instances still waiting. Exactly once:
//! `CalendarAdded` on an instance whose periods were already computed records nothing, and two
//! nodes telling the same instance meet at its version compare-and-set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Runtime, RuntimeError};
use crate::calendar::{Calendar, YearCalendar};
use crate::core::{Actor, CalendarNotice, Command, NodeStatus, State};
use crate::store::{CalendarYearRecord, InstanceFilter, MAX_PAGE_SIZE};

/// How often a node's timer service looks for calendar years added through another node.
pub const CALENDAR_REFRESH: Duration = Duration::from_secs(10);

/// What adding a year did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedYear {
    pub year: i32,
    pub notice: CalendarNotice,
    /// The instances whose waiting periods were computed, by id.
    pub instances: Vec<String>,
}

impl Runtime {
    /// Adds (or replaces) a year of the working-day calendar: `body` is the year's file in the
    /// bundled format, whose first notice must give its title and date (CAL006).
    pub async fn add_calendar_year(&self, body: &str, origin: &str, by: &Actor) -> Result<AddedYear, RuntimeError> {
        let year = YearCalendar::parse(body, origin).map_err(RuntimeError::Calendar)?;
        let (title, date) = year.notice_for_adding().map_err(RuntimeError::Calendar)?;
        let number = year.year();
        // Stored to the microsecond: what another node reads back, and what this one remembers.
        let added_at = chrono::SubsecRound::trunc_subsecs(self.clock.now(), 6);
        self.store
            .put_calendar_year(CalendarYearRecord {
                year: number,
                body: body.to_string(),
                added_at,
                added_by: by.principal.clone(),
            })
            .await?;
        self.swap_in([year]);
        self.mark_seen(number, added_at);
        let notice = CalendarNotice { title, date };
        let instances = self.apply_year(number, &notice, by).await?;
        Ok(AddedYear { year: number, notice, instances })
    }

    /// Loads the years added earlier (from the store) into the calendar, at start; then tells
    /// the instances that wait for a year now covered (added while this node was down, or by
    /// `serve --calendar-dir`).
    pub async fn load_calendar_years(&self, by: &Actor) -> Result<Vec<AddedYear>, RuntimeError> {
        let mut years = Vec::new();
        for record in self.store.calendar_years().await? {
            let origin = format!("stored calendar year {}", record.year);
            years.push(YearCalendar::parse(&record.body, &origin).map_err(RuntimeError::Calendar)?);
            self.mark_seen(record.year, record.added_at);
        }
        self.swap_in(years);
        let calendar = self.calendar();
        let mut added = Vec::new();
        for number in calendar.covered_years() {
            let Some(year) = calendar.year(number) else { continue };
            // Only a year whose notice names its date can be recorded; bundled years are never
            // awaited, since the calendar held them from the start.
            let Ok((title, date)) = year.notice_for_adding() else { continue };
            let notice = CalendarNotice { title, date };
            let instances = self.apply_year(number, &notice, by).await?;
            if !instances.is_empty() {
                added.push(AddedYear { year: number, notice, instances });
            }
        }
        Ok(added)
    }

    /// R0.2 on several nodes: swaps in the stored years this node has not seen (added or
    /// replaced through another node since), then tells the instances that wait for them, in
    /// the name of the administrator who added each year. Returns what it applied.
    pub async fn refresh_calendar_years(&self) -> Result<Vec<AddedYear>, RuntimeError> {
        let mut fresh = Vec::new();
        for record in self.store.calendar_years().await? {
            if self.seen(record.year) == Some(record.added_at) {
                continue;
            }
            let origin = format!("stored calendar year {}", record.year);
            let year = YearCalendar::parse(&record.body, &origin).map_err(RuntimeError::Calendar)?;
            fresh.push((year, record));
        }
        let mut added = Vec::new();
        for (year, record) in fresh {
            let notice = year.notice_for_adding().ok().map(|(title, date)| CalendarNotice { title, date });
            self.swap_in([year]);
            self.mark_seen(record.year, record.added_at);
            let Some(notice) = notice else { continue };
            let by = Actor { principal: record.added_by.clone(), office: String::new(), role: String::new() };
            let instances = self.apply_year(record.year, &notice, &by).await?;
            added.push(AddedYear { year: record.year, notice, instances });
        }
        Ok(added)
    }

    /// Whether the timer service should look for years added elsewhere now (every
    /// [`CALENDAR_REFRESH`]; the first round looks at once).
    pub(super) fn calendar_check_due(&self) -> bool {
        let mut last = match self.calendar_checked.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < CALENDAR_REFRESH) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn seen(&self, year: i32) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.calendar_seen.lock() {
            Ok(g) => g.get(&year).copied(),
            Err(poisoned) => poisoned.into_inner().get(&year).copied(),
        }
    }

    fn mark_seen(&self, year: i32, added_at: chrono::DateTime<chrono::Utc>) {
        let mut g = match self.calendar_seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.insert(year, added_at);
    }

    /// Replaces the calendar with one that has these years too.
    pub fn swap_in(&self, years: impl IntoIterator<Item = YearCalendar>) {
        let mut guard = match self.calendar.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let next: Calendar = Calendar::clone(&guard).with(years);
        *guard = Arc::new(next);
    }

    /// Runs `CalendarAdded` on every running instance that waits for `year`.
    async fn apply_year(&self, year: i32, notice: &CalendarNotice, by: &Actor) -> Result<Vec<String>, RuntimeError> {
        let mut waiting = Vec::new();
        let mut page = 1;
        loop {
            let filter = InstanceFilter {
                status: Some("running".into()),
                page,
                page_size: MAX_PAGE_SIZE,
                ..InstanceFilter::default()
            };
            let listed = self.store.list_instances(&filter).await?;
            for record in &listed.items {
                let Ok(state) = State::deserialize(&record.snapshot) else { continue };
                if waits_for(&state, year) {
                    waiting.push(record.id.clone());
                }
            }
            if listed.items.len() < MAX_PAGE_SIZE as usize || u64::from(page) * u64::from(MAX_PAGE_SIZE) >= listed.total
            {
                break;
            }
            page += 1;
        }
        let command = Command::CalendarAdded { year, notice: notice.clone(), added_by: by.principal.clone() };
        for id in &waiting {
            self.run(id, &command, by, None, None, None).await?;
        }
        Ok(waiting)
    }
}

/// Whether an open step of the instance has a period waiting for `year`.
fn waits_for(state: &State, year: i32) -> bool {
    state.nodes.values().any(|n| {
        n.status == NodeStatus::Open
            && (n.due_awaiting.is_some_and(|w| w.year == year) || n.min_awaiting.is_some_and(|w| w.year == year))
    })
}
