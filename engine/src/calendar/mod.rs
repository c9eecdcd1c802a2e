//! Working-day calendar (工作日历): which days are working days (工作日) in mainland China.
//!
//! Deadlines in the procedures are counted in calendar days or in working days, and a period
//! that ends on a rest day is often moved to the next working day. Which days are working days
//! is not a weekday rule: every year the State Council publishes the holiday arrangement
//! (国务院办公厅关于…部分节假日安排的通知), which gives holiday periods and moves work onto some
//! weekend days in exchange (调休上班, "make-up working days"). So the calendar is data: one file
//! per year, each naming the notice it transcribes, in `engine/calendars/cn/YYYY.json`.
//!
//! A date in a year the calendar has no file for is an error ([`CalendarError::YearNotCovered`]),
//! never a weekday guess: a guessed deadline that later turns out to fall in a holiday week
//! is worse than a refusal that says which file to add.
//!
//! [`Calendar`] itself does no I/O. The bundled years are compiled in ([`Calendar::chinese`]);
//! [`Calendar::load_dir`] (in the `load` module, the only place that touches the file system)
//! adds or replaces years from a directory of files in the same format, without a rebuild.
//!
//! The file format (JSON):
//!
//! ```json
//! {
//!   "year": 2026,
//!   "source": {
//!     "notices": [{ "title": "国务院办公厅关于2026年部分节假日安排的通知",
//!                   "document_number": null, "url": "https://…", "summary": ["…"] }],
//!     "package": { "name": "chinese-days", "version": "1.5.7", "registry": "npm",
//!                  "license": "MIT", "file": "dist/years/2026.json" }
//!   },
//!   "checks": ["how the data was checked"],
//!   "entries": [
//!     { "date": "2026-10-01", "kind": "holiday", "name": "国庆节" },
//!     { "date": "2026-10-10", "kind": "makeup_workday", "name": "国庆节" }
//!   ]
//! }
//! ```
//!
//! A file holds the dates of its own year only, and a year's file is the whole truth for that
//! year: days it does not list follow the weekday rule (Monday to Friday work, weekends rest).

mod load;
#[cfg(test)]
mod tests;

pub use load::read_dir;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// The bundled Chinese calendar: each year's file, embedded at build time.
///
/// `engine/calendars/generate.py` writes these files; a test checks that this list and the
/// directory hold the same years.
pub const BUNDLED_CN: &[(i32, &str)] = &[
    (2004, include_str!("../../calendars/cn/2004.json")),
    (2005, include_str!("../../calendars/cn/2005.json")),
    (2006, include_str!("../../calendars/cn/2006.json")),
    (2007, include_str!("../../calendars/cn/2007.json")),
    (2008, include_str!("../../calendars/cn/2008.json")),
    (2009, include_str!("../../calendars/cn/2009.json")),
    (2010, include_str!("../../calendars/cn/2010.json")),
    (2011, include_str!("../../calendars/cn/2011.json")),
    (2012, include_str!("../../calendars/cn/2012.json")),
    (2013, include_str!("../../calendars/cn/2013.json")),
    (2014, include_str!("../../calendars/cn/2014.json")),
    (2015, include_str!("../../calendars/cn/2015.json")),
    (2016, include_str!("../../calendars/cn/2016.json")),
    (2017, include_str!("../../calendars/cn/2017.json")),
    (2018, include_str!("../../calendars/cn/2018.json")),
    (2019, include_str!("../../calendars/cn/2019.json")),
    (2020, include_str!("../../calendars/cn/2020.json")),
    (2021, include_str!("../../calendars/cn/2021.json")),
    (2022, include_str!("../../calendars/cn/2022.json")),
    (2023, include_str!("../../calendars/cn/2023.json")),
    (2024, include_str!("../../calendars/cn/2024.json")),
    (2025, include_str!("../../calendars/cn/2025.json")),
    (2026, include_str!("../../calendars/cn/2026.json")),
];

/// A working-day calendar: the years it covers, each with its holidays and make-up working days.
///
/// Pure: answers come from the data it holds; it reads no files and no clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    years: BTreeMap<i32, YearCalendar>,
}

/// One year of a calendar, checked: every entry is in the year, no date is listed twice, every
/// make-up working day is a weekend day, and the source names at least one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearCalendar {
    file: YearFile,
    origin: String,
    days: BTreeMap<NaiveDate, usize>,
}

/// A year's data file as written on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearFile {
    /// The calendar year every entry falls in.
    pub year: i32,
    /// Where the arrangement comes from.
    pub source: Source,
    /// How the data was checked (against another package, against the notice text, by hand).
    #[serde(default)]
    pub checks: Vec<String>,
    /// The days that differ from the weekday rule, or belong to a holiday period.
    pub entries: Vec<Entry>,
}

/// Where a year's arrangement comes from: the notices, and the package it was transcribed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The notices (通知) that set the arrangement, the annual one first; later notices amend
    /// earlier ones (2020: the Spring Festival holiday extended).
    pub notices: Vec<Notice>,
    /// The registry package the entries were generated from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    /// The script that wrote the file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<String>,
}

/// A notice that sets holidays and make-up working days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The title, e.g. 国务院办公厅关于2026年部分节假日安排的通知.
    pub title: String,
    /// The document number (文号), e.g. 国办发明电〔2024〕12号, where the source gives it.
    #[serde(default)]
    pub document_number: Option<String>,
    /// Where the notice was published.
    #[serde(default)]
    pub url: Option<String>,
    /// The notice's arrangement lines, as the source quotes them.
    #[serde(default)]
    pub summary: Vec<String>,
    /// The day the notice was issued (成文日期 or 发布日期). Required for a year added at run
    /// time (R0.2), where it is recorded in every instance the year affects; the bundled files,
    /// generated from the packages, do not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
}

/// A package of a public registry that a year's entries were generated from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Package {
    /// The package name, e.g. chinese-days.
    pub name: String,
    /// The exact version used.
    pub version: String,
    /// The registry, e.g. npm.
    pub registry: String,
    /// The package's license, e.g. MIT.
    pub license: String,
    /// The file inside the package that was read.
    #[serde(default)]
    pub file: Option<String>,
}

/// One listed day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The day.
    pub date: NaiveDate,
    /// Whether the day is off (a holiday period) or worked in exchange (调休上班).
    pub kind: DayKind,
    /// The festival the day belongs to, e.g. 国庆节.
    pub name: String,
}

/// What a listed day is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A day of a holiday period (放假), weekends inside the period included: not a working day.
    Holiday,
    /// A Saturday or Sunday worked in exchange for a weekday off (调休上班): a working day.
    MakeupWorkday,
}

/// Why a calendar could not answer, or could not be built. Each variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarError {
    /// CAL001: the answer depends on a day in a year the calendar has no data for.
    YearNotCovered {
        /// The year asked about.
        year: i32,
        /// The years the calendar does cover, ascending.
        covered: Vec<i32>,
    },
    /// CAL002: date arithmetic left the range of representable dates.
    OutOfRange {
        /// The date the arithmetic started from.
        date: NaiveDate,
        /// The number of days added (negative: subtracted).
        days: i64,
    },
    /// CAL003: a data file is not JSON of the calendar format.
    Parse {
        /// Which file: a path, or the bundled file's name.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// CAL004: a data file parses but breaks a rule of the format.
    InvalidData {
        /// Which file: a path, or the bundled file's name.
        origin: String,
        /// Which rule, and which entry.
        message: String,
    },
    /// CAL005: a calendar directory or file could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// CAL006: a year added at run time must name its notice's title and date (R0.2): both are
    /// recorded in the history of every instance the year affects.
    NoticeRequired {
        /// Which file.
        origin: String,
        /// What is missing.
        missing: &'static str,
    },
}

impl CalendarError {
    /// The stable code: CAL001 … CAL006. Codes are never reused or renumbered.
    pub fn code(&self) -> &'static str {
        match self {
            CalendarError::YearNotCovered { .. } => "CAL001",
            CalendarError::OutOfRange { .. } => "CAL002",
            CalendarError::Parse { .. } => "CAL003",
            CalendarError::InvalidData { .. } => "CAL004",
            CalendarError::Io { .. } => "CAL005",
            CalendarError::NoticeRequired { .. } => "CAL006",
        }
    }
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CalendarError::YearNotCovered { year, covered } => write!(
                f,
                "no working-day calendar for {year} (covered: {}); working days in {year} are \
                 not guessed from weekdays: an administrator adds the year \
                 (`civicflow calendar add {year}.json`)",
                year_ranges(covered)
            ),
            CalendarError::OutOfRange { date, days } => {
                write!(f, "{date} plus {days} days is outside the representable dates")
            }
            CalendarError::Parse { origin, message } => {
                write!(f, "{origin}: not a calendar data file: {message}")
            }
            CalendarError::InvalidData { origin, message } => write!(f, "{origin}: {message}"),
            CalendarError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            CalendarError::NoticeRequired { origin, missing } => write!(
                f,
                "{origin}: {missing} is required to add a year: it is recorded in the history of every \
                 instance the year affects"
            ),
        }
    }
}

impl std::error::Error for CalendarError {}

impl YearCalendar {
    /// Parses and checks one year's file. `origin` names the file in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CalendarError> {
        let file: YearFile = serde_json::from_str(text)
            .map_err(|e| CalendarError::Parse { origin: origin.to_owned(), message: e.to_string() })?;
        Self::new(file, origin)
    }

    /// Checks a year's data: entries in the year, no date twice, make-up working days on
    /// weekends, at least one notice with a title.
    pub fn new(file: YearFile, origin: &str) -> Result<Self, CalendarError> {
        let invalid = |message: String| CalendarError::InvalidData { origin: origin.to_owned(), message };
        if file.source.notices.is_empty() {
            return Err(invalid(
                "source.notices is empty: name the notice (通知) the arrangement comes from".to_owned(),
            ));
        }
        if file.source.notices.iter().any(|n| n.title.trim().is_empty()) {
            return Err(invalid("a notice in source.notices has an empty title".to_owned()));
        }
        let mut days = BTreeMap::new();
        for (index, entry) in file.entries.iter().enumerate() {
            if entry.date.year() != file.year {
                return Err(invalid(format!(
                    "entry {} is not in {}: a file holds the dates of its own year only",
                    entry.date, file.year
                )));
            }
            if entry.name.trim().is_empty() {
                return Err(invalid(format!("entry {} has an empty name", entry.date)));
            }
            if entry.kind == DayKind::MakeupWorkday && !is_weekend(entry.date) {
                return Err(invalid(format!(
                    "make-up working day {} is a {}: 调休上班 moves work onto a Saturday or Sunday",
                    entry.date,
                    weekday_name(entry.date.weekday())
                )));
            }
            if days.insert(entry.date, index).is_some() {
                return Err(invalid(format!("entry {} is listed twice", entry.date)));
            }
        }
        Ok(YearCalendar { file, origin: origin.to_owned(), days })
    }

    /// The calendar year.
    pub fn year(&self) -> i32 {
        self.file.year
    }

    /// Where the arrangement comes from.
    pub fn source(&self) -> &Source {
        &self.file.source
    }

    /// How the data was checked.
    pub fn checks(&self) -> &[String] {
        &self.file.checks
    }

    /// The listed days, in date order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.days.values().filter_map(|&index| self.file.entries.get(index))
    }

    /// The listed day for `date`, if any.
    pub fn entry(&self, date: NaiveDate) -> Option<&Entry> {
        self.days.get(&date).and_then(|&index| self.file.entries.get(index))
    }

    /// Which file the year came from: a path, or `bundled calendars/cn/YYYY.json`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The file as parsed.
    pub fn file(&self) -> &YearFile {
        &self.file
    }

    /// The notice a year added at run time is recorded with: the first notice's title and date,
    /// both required (CAL006).
    pub fn notice_for_adding(&self) -> Result<(String, NaiveDate), CalendarError> {
        let required = |missing| CalendarError::NoticeRequired { origin: self.origin.clone(), missing };
        let notice = self.file.source.notices.first().ok_or_else(|| required("source.notices[0]"))?;
        if notice.title.trim().is_empty() {
            return Err(required("source.notices[0].title"));
        }
        let date = notice.date.ok_or_else(|| required("source.notices[0].date"))?;
        Ok((notice.title.clone(), date))
    }

    fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.entry(date).map(|e| e.kind) {
            Some(DayKind::Holiday) => false,
            Some(DayKind::MakeupWorkday) => true,
            None => !is_weekend(date),
        }
    }
}

impl Calendar {
    /// An empty calendar: covers no year, so every question is [`CalendarError::YearNotCovered`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The bundled Chinese calendar (national holidays and 调休 of the State Council notices).
    ///
    /// Fails only if a bundled file is broken, which the crate's tests rule out.
    pub fn chinese() -> Result<Self, CalendarError> {
        let mut calendar = Self::new();
        for &(year, text) in BUNDLED_CN {
            let year_calendar = YearCalendar::parse(text, &format!("bundled calendars/cn/{year}.json"))?;
            calendar.insert(year_calendar);
        }
        Ok(calendar)
    }

    /// Adds a year, replacing the year's previous data whole (a local file for a year wins over
    /// the bundled one, and no entries of the two are mixed). Returns the replaced year.
    pub fn insert(&mut self, year: YearCalendar) -> Option<YearCalendar> {
        self.years.insert(year.year(), year)
    }

    /// The calendar with these years added, each replacing the same year if present.
    pub fn with(mut self, years: impl IntoIterator<Item = YearCalendar>) -> Self {
        for year in years {
            self.insert(year);
        }
        self
    }

    /// The covered years, ascending.
    pub fn covered_years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    /// One year's data, if covered.
    pub fn year(&self, year: i32) -> Option<&YearCalendar> {
        self.years.get(&year)
    }

    /// The listed day for `date` (holiday or make-up working day), or `None` for an ordinary day.
    pub fn entry(&self, date: NaiveDate) -> Result<Option<&Entry>, CalendarError> {
        Ok(self.covering(date)?.entry(date))
    }

    /// Whether `date` is a working day (工作日): a weekday that is not a holiday, or a weekend
    /// day listed as a make-up working day (调休上班).
    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        Ok(self.covering(date)?.is_working_day(date))
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        self.add_workdays(date, 1)
    }

    /// `date` itself if it is a working day, otherwise the next working day: where a period
    /// whose last day is a rest day ends under the civil-procedure rule.
    pub fn roll_forward(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        if self.is_working_day(date)? {
            Ok(date)
        } else {
            self.next_working_day(date)
        }
    }

    /// The `n`-th working day after `date` (`date` itself does not count); for negative `n`,
    /// the `|n|`-th working day before it; `date` itself for 0.
    ///
    /// "Within 10 workdays after X" ends on `add_workdays(x, 10)`. Each day passed over must
    /// be in a covered year: the count never steps into a year it would have to guess.
    pub fn add_workdays(&self, date: NaiveDate, n: i64) -> Result<NaiveDate, CalendarError> {
        let mut day = date;
        let mut left = n.unsigned_abs();
        while left > 0 {
            day = step(day, n > 0).ok_or(CalendarError::OutOfRange { date, days: n })?;
            if self.is_working_day(day)? {
                left -= 1;
            }
        }
        Ok(day)
    }

    /// `date` plus `n` calendar days; with `roll`, a result on a rest day moves to the next
    /// working day (the civil-procedure rule for the end of a period; it moves forward whatever
    /// the sign of `n`).
    ///
    /// Without `roll` no day is looked up, so the result is not refused for an uncovered year:
    /// a period of calendar days does not depend on the holiday arrangement.
    pub fn add_days(&self, date: NaiveDate, n: i64, roll: bool) -> Result<NaiveDate, CalendarError> {
        let days = Days::new(n.unsigned_abs());
        let end = if n >= 0 { date.checked_add_days(days) } else { date.checked_sub_days(days) }
            .ok_or(CalendarError::OutOfRange { date, days: n })?;
        if roll {
            self.roll_forward(end)
        } else {
            Ok(end)
        }
    }

    /// The number of working days in `(start, end]`: the days after `start` up to and including
    /// `end`, so that `workdays_between(d, add_workdays(d, n)?) == n` for `n >= 0`. Negative when
    /// `end` is before `start` (minus the working days in `(end, start]`).
    pub fn workdays_between(&self, start: NaiveDate, end: NaiveDate) -> Result<i64, CalendarError> {
        let (from, to, sign) = if start <= end { (start, end, 1) } else { (end, start, -1) };
        let mut count = 0;
        let mut day = from;
        while day < to {
            day = step(day, true).ok_or(CalendarError::OutOfRange { date: day, days: 1 })?;
            if self.is_working_day(day)? {
                count += 1;
            }
        }
        Ok(sign * count)
    }

    fn covering(&self, date: NaiveDate) -> Result<&YearCalendar, CalendarError> {
        self.years
            .get(&date.year())
            .ok_or_else(|| CalendarError::YearNotCovered { year: date.year(), covered: self.covered_years() })
    }
}

fn step(day: NaiveDate, forward: bool) -> Option<NaiveDate> {
    if forward {
        day.succ_opt()
    } else {
        day.pred_opt()
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn weekday_name(weekday: Weekday) -> &'static str {
    match weekday {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// "2008, 2012, 2020-2026": consecutive years joined into ranges.
fn year_ranges(years: &[i32]) -> String {
    if years.is_empty() {
        return "no years".to_owned();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut iter = years.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last { first.to_string() } else { format!("{first}-{last}") });
    }
    parts.join(", ")
}
