#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::fs;
use std::path::PathBuf;

use super::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn cn() -> Calendar {
    Calendar::chinese().unwrap()
}

/// A fresh directory under the system temp dir, unique to this process and test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("civicflow-calendar-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

const LOCAL_NOTICE: &str = r#"{"notices": [{"title": "某市人民政府办公室关于地方节假日安排的通知"}]}"#;

fn year_json(year: i32, entries: &str) -> String {
    format!(r#"{{"year": {year}, "source": {LOCAL_NOTICE}, "entries": [{entries}]}}"#)
}

// --- 2026: National Day ---------------------------------------------------------------------

#[test]
fn ten_workdays_from_2026_09_28_cross_national_day() {
    // By hand from cn/2026.json: Mon 09-28 is the start and does not count. 09-29 (1), 09-30 (2);
    // 10-01..10-07 国庆节 off; Thu 10-08 (3), Fri 10-09 (4), Sat 10-10 make-up (5); Sun 10-11 off;
    // Mon 10-12 (6), 10-13 (7), 10-14 (8), 10-15 (9), Fri 10-16 (10).
    let cal = cn();
    assert_eq!(cal.add_workdays(d(2026, 9, 28), 10), Ok(d(2026, 10, 16)));
    assert_eq!(cal.workdays_between(d(2026, 9, 28), d(2026, 10, 16)), Ok(10));
    assert_eq!(cal.add_workdays(d(2026, 9, 28), 2), Ok(d(2026, 9, 30)));
    assert_eq!(cal.add_workdays(d(2026, 9, 28), 3), Ok(d(2026, 10, 8)));
    assert_eq!(cal.add_workdays(d(2026, 10, 16), -10), Ok(d(2026, 9, 28)));
}

#[test]
fn makeup_saturday_and_sunday_are_working_days() {
    let cal = cn();
    // Saturday 2026-10-10 and Sunday 2026-09-20 are worked for 国庆节 (调休上班).
    assert_eq!(d(2026, 10, 10).weekday(), Weekday::Sat);
    assert_eq!(cal.is_working_day(d(2026, 10, 10)), Ok(true));
    assert_eq!(d(2026, 9, 20).weekday(), Weekday::Sun);
    assert_eq!(cal.is_working_day(d(2026, 9, 20)), Ok(true));
    let entry = cal.entry(d(2026, 10, 10)).unwrap().unwrap();
    assert_eq!(entry.kind, DayKind::MakeupWorkday);
    assert_eq!(entry.name, "国庆节");
    // The neighbouring Sunday is an ordinary rest day, the holiday days are off.
    assert_eq!(cal.is_working_day(d(2026, 10, 11)), Ok(false));
    assert_eq!(cal.entry(d(2026, 10, 11)), Ok(None));
    assert_eq!(cal.is_working_day(d(2026, 10, 1)), Ok(false));
    assert_eq!(cal.is_working_day(d(2026, 10, 7)), Ok(false));
    assert_eq!(cal.is_working_day(d(2026, 10, 8)), Ok(true));
    // An ordinary Saturday and an ordinary Tuesday.
    assert_eq!(cal.is_working_day(d(2026, 10, 17)), Ok(false));
    assert_eq!(cal.is_working_day(d(2026, 9, 29)), Ok(true));
}

#[test]
fn working_days_in_2026() {
    // 365 days, 104 weekend days (2026 starts on a Thursday: 52 weeks and one Thursday).
    // Weekdays off: 元旦 01-01, 01-02 (2); 春节 02-16..02-20, 02-23 (6); 清明节 04-06 (1);
    // 劳动节 05-01, 05-04, 05-05 (3); 端午节 06-19 (1); 中秋节 09-25 (1); 国庆节 10-01, 10-02,
    // 10-05..10-07 (5): 19. Make-up days: 01-04, 02-14, 02-28, 05-09, 09-20, 10-10: 6.
    // 365 - 104 - 19 + 6 = 248.
    let cal = cn();
    assert_eq!(cal.workdays_between(d(2025, 12, 31), d(2026, 12, 31)), Ok(248));
    assert_eq!(cal.workdays_between(d(2026, 12, 31), d(2025, 12, 31)), Ok(-248));
}

// --- 2012: Qingming and May Day ---------------------------------------------------------------

#[test]
fn qingming_and_may_day_2012() {
    let cal = cn();
    // 清明节: 04-02..04-04 (Mon–Wed) off; Sat 03-31 and Sun 04-01 worked.
    assert_eq!(cal.is_working_day(d(2012, 3, 31)), Ok(true));
    assert_eq!(cal.is_working_day(d(2012, 4, 1)), Ok(true));
    for day in 2..=4 {
        assert_eq!(cal.is_working_day(d(2012, 4, day)), Ok(false));
    }
    assert_eq!(cal.entry(d(2012, 4, 3)).unwrap().unwrap().name, "清明节");
    assert_eq!(cal.is_working_day(d(2012, 4, 5)), Ok(true));
    // From Fri 03-30: 03-31 (1), 04-01 (2), 04-05 (3).
    assert_eq!(cal.add_workdays(d(2012, 3, 30), 1), Ok(d(2012, 3, 31)));
    assert_eq!(cal.add_workdays(d(2012, 3, 30), 3), Ok(d(2012, 4, 5)));
    assert_eq!(cal.next_working_day(d(2012, 4, 1)), Ok(d(2012, 4, 5)));

    // 劳动节: Sun 04-29..Tue 05-01 off; Sat 04-28 worked.
    assert_eq!(cal.is_working_day(d(2012, 4, 28)), Ok(true));
    assert_eq!(cal.is_working_day(d(2012, 4, 30)), Ok(false));
    assert_eq!(cal.is_working_day(d(2012, 5, 1)), Ok(false));
    assert_eq!(cal.entry(d(2012, 5, 1)).unwrap().unwrap().name, "劳动节");
    // From Fri 04-27: 04-28 (1), 05-02 (2).
    assert_eq!(cal.add_workdays(d(2012, 4, 27), 2), Ok(d(2012, 5, 2)));
    // (03-30, 05-02]: 03-31 (1); April: 04-01, 04-05, 04-06, three full weeks 09–27 (15),
    // 04-28: 19; 05-02 (1). 21 in all.
    assert_eq!(cal.workdays_between(d(2012, 3, 30), d(2012, 5, 2)), Ok(21));
}

#[test]
fn dragon_boat_2012_includes_the_festival_saturday() {
    // The notice: 端午节 6月22日至24日放假公休; the generator adds Saturday 06-23 that
    // chinese-days 1.5.7 leaves out.
    let cal = cn();
    let entry = cal.entry(d(2012, 6, 23)).unwrap().unwrap();
    assert_eq!((entry.kind, entry.name.as_str()), (DayKind::Holiday, "端午节"));
    assert_eq!(cal.is_working_day(d(2012, 6, 22)), Ok(false));
}

#[test]
fn national_day_2008_and_spring_festival_2020_extension() {
    let cal = cn();
    // 2008: Sat 09-27 and Sun 09-28 worked, 09-29..10-05 off.
    assert_eq!(cal.add_workdays(d(2008, 9, 26), 3), Ok(d(2008, 10, 6)));
    // 2020: the extension notice ended 春节 on 02-02, so Sat 02-01 (a make-up day in the annual
    // notice) is off; Sun 01-19 stays worked.
    assert_eq!(cal.is_working_day(d(2020, 2, 1)), Ok(false));
    assert_eq!(cal.is_working_day(d(2020, 1, 19)), Ok(true));
    assert_eq!(cal.next_working_day(d(2020, 1, 23)), Ok(d(2020, 2, 3)));
}

// --- add_days and roll --------------------------------------------------------------------------

#[test]
fn add_days_with_and_without_roll() {
    let cal = cn();
    // Thu 09-24 + 7 days lands on 10-01, the first day of 国庆节.
    assert_eq!(cal.add_days(d(2026, 9, 24), 7, false), Ok(d(2026, 10, 1)));
    assert_eq!(cal.add_days(d(2026, 9, 24), 7, true), Ok(d(2026, 10, 8)));
    // Landing on the make-up Saturday 10-10: a working day, so it stays.
    assert_eq!(cal.add_days(d(2026, 10, 3), 7, true), Ok(d(2026, 10, 10)));
    // Landing on an ordinary Saturday 10-17: moves to Monday.
    assert_eq!(cal.add_days(d(2026, 10, 10), 7, true), Ok(d(2026, 10, 19)));
    // Backwards, and zero.
    assert_eq!(cal.add_days(d(2026, 10, 8), -7, false), Ok(d(2026, 10, 1)));
    assert_eq!(cal.add_days(d(2026, 10, 8), -7, true), Ok(d(2026, 10, 8)));
    assert_eq!(cal.add_days(d(2026, 10, 1), 0, true), Ok(d(2026, 10, 8)));
    assert_eq!(cal.roll_forward(d(2026, 10, 9)), Ok(d(2026, 10, 9)));
}

#[test]
fn add_days_without_roll_needs_no_covered_year() {
    let cal = cn();
    assert_eq!(cal.add_days(d(2030, 1, 1), 30, false), Ok(d(2030, 1, 31)));
    let err = cal.add_days(d(2030, 1, 1), 30, true).unwrap_err();
    assert!(matches!(err, CalendarError::YearNotCovered { year: 2030, .. }));
}

#[test]
fn add_days_out_of_range() {
    let cal = cn();
    let err = cal.add_days(d(2026, 1, 1), i64::MAX, false).unwrap_err();
    assert_eq!(err, CalendarError::OutOfRange { date: d(2026, 1, 1), days: i64::MAX });
    assert_eq!(err.code(), "CAL002");
}

// --- years not covered --------------------------------------------------------------------------

#[test]
fn year_2003_is_not_covered() {
    let cal = cn();
    let err = cal.is_working_day(d(2003, 6, 3)).unwrap_err();
    assert_eq!(err, CalendarError::YearNotCovered { year: 2003, covered: (2004..=2026).collect() });
    assert_eq!(err.code(), "CAL001");
    assert_eq!(
        err.to_string(),
        "no working-day calendar for 2003 (covered: 2004-2026); working days in \
         2003 are not guessed from weekdays: an administrator adds the year \
         (`civicflow calendar add 2003.json`)"
    );
}

#[test]
fn counting_never_steps_into_an_uncovered_year() {
    let cal = cn();
    // Thu 2026-12-31 is the 1st working day after 12-30; the 2nd would be in 2027.
    assert_eq!(cal.add_workdays(d(2026, 12, 30), 1), Ok(d(2026, 12, 31)));
    let err = cal.add_workdays(d(2026, 12, 30), 2).unwrap_err();
    assert!(matches!(err, CalendarError::YearNotCovered { year: 2027, .. }));
    let err = cal.workdays_between(d(2026, 12, 1), d(2027, 1, 5)).unwrap_err();
    assert!(matches!(err, CalendarError::YearNotCovered { year: 2027, .. }));
    // 2004-01-01 is 元旦: the working day before Friday 2004-01-02 is in 2003.
    let err = cal.add_workdays(d(2004, 1, 2), -1).unwrap_err();
    assert!(matches!(err, CalendarError::YearNotCovered { year: 2003, .. }));
}

#[test]
fn an_empty_calendar_covers_nothing() {
    let err = Calendar::new().is_working_day(d(2026, 1, 5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no working-day calendar for 2026 (covered: no years); working days in 2026 are not \
         guessed from weekdays: an administrator adds the year (`civicflow calendar add 2026.json`)"
    );
}

#[test]
fn year_ranges_join_consecutive_years() {
    assert_eq!(year_ranges(&[2008, 2012, 2020, 2021, 2022]), "2008, 2012, 2020-2022");
    assert_eq!(year_ranges(&[2008, 2009, 2011]), "2008-2009, 2011");
    assert_eq!(year_ranges(&[2026]), "2026");
}

// --- counting properties -------------------------------------------------------------------------

#[test]
fn add_workdays_and_workdays_between_agree() {
    let cal = cn();
    let start = d(2020, 1, 2);
    for n in 0..=600 {
        let end = cal.add_workdays(start, n).unwrap();
        assert_eq!(cal.workdays_between(start, end), Ok(n), "n = {n}");
        assert_eq!(cal.is_working_day(end), Ok(true), "n = {n}");
        // 2020-01-02 is a working day, so counting back returns to it.
        assert_eq!(cal.add_workdays(end, -n), Ok(start), "n = {n}");
    }
    assert_eq!(cal.add_workdays(d(2026, 10, 1), 0), Ok(d(2026, 10, 1)));
}

// --- bundled data ----------------------------------------------------------------------------------

#[test]
fn every_bundled_file_parses_and_has_a_source() {
    let cal = cn();
    // R0.2: every year both MIT-licensed packages cover.
    assert_eq!(cal.covered_years(), (2004..=2026).collect::<Vec<_>>());
    for &(year, text) in BUNDLED_CN {
        let y = YearCalendar::parse(text, "test").unwrap();
        assert_eq!(y.year(), year);
        let source = y.source();
        let annual = source.notices.first().unwrap();
        assert_eq!(annual.title, format!("国务院办公厅关于{year}年部分节假日安排的通知"));
        // chinese-days gives a republication for 2004 (Wikisource) and 2005 (a Q&A page quoting
        // the notice); gov.cn from 2006 on.
        let url = annual.url.as_deref().unwrap();
        match year {
            2004 => assert!(url.starts_with("https://zh.wikisource.org/"), "{url}"),
            2005 => assert!(url.starts_with("https://zhidao.baidu.com/"), "{url}"),
            _ => assert!(url.contains("gov.cn"), "{year}: {url}"),
        }
        assert!(!annual.summary.is_empty(), "{year}");
        let package = source.package.as_ref().unwrap();
        assert_eq!(
            (package.name.as_str(), package.version.as_str(), package.registry.as_str(), package.license.as_str()),
            ("chinese-days", "1.5.7", "npm", "MIT")
        );
        assert!(y.checks()[0].starts_with("chinesecalendar 1.11.0 (PyPI, MIT) gives the same"));
        assert!(y.checks()[1].starts_with("The notice text quoted in source.notices"));
        assert!(y.entries().count() >= 28, "{year}");
        assert!(y.entries().any(|e| e.kind == DayKind::MakeupWorkday), "{year}");
        assert_eq!(cal.year(year).unwrap().origin(), format!("bundled calendars/cn/{year}.json"));
    }
    let y2020 = cal.year(2020).unwrap();
    assert_eq!(y2020.source().notices[1].title, "国务院办公厅关于延长2020年春节假期的通知");
    let y2025 = cal.year(2025).unwrap();
    assert_eq!(y2025.source().notices[0].document_number.as_deref(), Some("国办发明电〔2024〕12号"));
    assert!(cal.year(2026).unwrap().checks()[2].starts_with("Checked by hand"));
}

#[test]
fn bundled_list_matches_the_calendars_directory() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("calendars/cn");
    let from_dir = read_dir(&dir).unwrap();
    let bundled = cn();
    assert_eq!(from_dir.iter().map(YearCalendar::year).collect::<Vec<_>>(), bundled.covered_years());
    for year in &from_dir {
        assert_eq!(year.file(), bundled.year(year.year()).unwrap().file());
    }
}

// --- load_dir ----------------------------------------------------------------------------------------

#[test]
fn load_dir_replaces_a_bundled_year_and_adds_one() {
    let dir = temp_dir("override");
    // A local arrangement for 2026: one local holiday on Monday 03-02, nothing else.
    fs::write(
        dir.join("2026.json"),
        year_json(2026, r#"{"date": "2026-03-02", "kind": "holiday", "name": "地方假日"}"#),
    )
    .unwrap();
    // A test year 2027 (not the real arrangement): only 01-01 off.
    fs::write(dir.join("2027.json"), year_json(2027, r#"{"date": "2027-01-01", "kind": "holiday", "name": "元旦"}"#))
        .unwrap();
    fs::write(dir.join("README.txt"), "not data").unwrap();

    let cal = Calendar::load_dir(&dir).unwrap();
    assert_eq!(cal.covered_years(), (2004..=2027).collect::<Vec<_>>());
    let y2026 = cal.year(2026).unwrap();
    assert_eq!(y2026.origin(), dir.join("2026.json").display().to_string());
    assert_eq!(cal.is_working_day(d(2026, 3, 2)), Ok(false));
    // The local year replaces the bundled one whole: 国庆节 is no longer in it.
    assert_eq!(cal.is_working_day(d(2026, 10, 1)), Ok(true));
    assert_eq!(cal.is_working_day(d(2026, 10, 10)), Ok(false));
    // Other bundled years are untouched.
    assert_eq!(cal.is_working_day(d(2025, 10, 1)), Ok(false));
    // Counting now runs into 2027: Thu 12-31 (1), Fri 01-01 off, weekend, Mon 01-04 (2).
    assert_eq!(cal.add_workdays(d(2026, 12, 30), 2), Ok(d(2027, 1, 4)));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_dir_errors_name_the_file() {
    let missing = std::env::temp_dir().join(format!("civicflow-calendar-{}-missing", std::process::id()));
    let err = read_dir(&missing).unwrap_err();
    assert_eq!(err.code(), "CAL005");
    assert!(err.to_string().starts_with(&missing.display().to_string()));

    let dir = temp_dir("badname");
    fs::write(dir.join("local.json"), year_json(2026, "")).unwrap();
    let err = read_dir(&dir).unwrap_err();
    assert_eq!(err.code(), "CAL004");
    assert_eq!(
        err.to_string(),
        format!("{}: a calendar file is named after its year: YYYY.json", dir.join("local.json").display())
    );
    fs::remove_dir_all(&dir).unwrap();

    let dir = temp_dir("wrongyear");
    fs::write(dir.join("2025.json"), year_json(2024, "")).unwrap();
    let err = read_dir(&dir).unwrap_err();
    assert_eq!(err.code(), "CAL004");
    assert!(err.to_string().ends_with(": the file is named 2025 but holds year 2024"));
    fs::remove_dir_all(&dir).unwrap();

    let dir = temp_dir("badjson");
    fs::write(dir.join("2025.json"), "{\"year\": 2025,").unwrap();
    let err = read_dir(&dir).unwrap_err();
    assert_eq!(err.code(), "CAL003");
    fs::remove_dir_all(&dir).unwrap();
}

// --- validation of a year's data ---------------------------------------------------------------------

#[test]
fn makeup_workday_on_a_weekday_is_refused() {
    let text = year_json(2026, r#"{"date": "2026-09-21", "kind": "makeup_workday", "name": "国庆节"}"#);
    let err = YearCalendar::parse(&text, "local/2026.json").unwrap_err();
    assert_eq!(err.code(), "CAL004");
    assert_eq!(
        err.to_string(),
        "local/2026.json: make-up working day 2026-09-21 is a Monday: 调休上班 moves work onto a \
         Saturday or Sunday"
    );
}

#[test]
fn entries_outside_the_year_or_twice_are_refused() {
    let text = year_json(2026, r#"{"date": "2025-12-31", "kind": "holiday", "name": "元旦"}"#);
    assert_eq!(
        YearCalendar::parse(&text, "f").unwrap_err().to_string(),
        "f: entry 2025-12-31 is not in 2026: a file holds the dates of its own year only"
    );
    let twice = r#"{"date": "2026-10-01", "kind": "holiday", "name": "国庆节"},
                   {"date": "2026-10-01", "kind": "holiday", "name": "国庆节"}"#;
    assert_eq!(
        YearCalendar::parse(&year_json(2026, twice), "f").unwrap_err().to_string(),
        "f: entry 2026-10-01 is listed twice"
    );
}

#[test]
fn a_file_without_a_source_is_refused() {
    let text = r#"{"year": 2026, "source": {"notices": []}, "entries": []}"#;
    let err = YearCalendar::parse(text, "f").unwrap_err();
    assert_eq!(err.code(), "CAL004");
    assert_eq!(err.to_string(), "f: source.notices is empty: name the notice (通知) the arrangement comes from");
    let no_source = r#"{"year": 2026, "entries": []}"#;
    let err = YearCalendar::parse(no_source, "f").unwrap_err();
    assert_eq!(err.code(), "CAL003");
    assert!(err.to_string().contains("missing field `source`"), "{err}");
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    let typo = year_json(2026, r#"{"date": "2026-10-01", "kind": "holiday", "nmae": "国庆节"}"#);
    assert_eq!(YearCalendar::parse(&typo, "f").unwrap_err().code(), "CAL003");
    let kind = year_json(2026, r#"{"date": "2026-10-01", "kind": "rest", "name": "国庆节"}"#);
    assert_eq!(YearCalendar::parse(&kind, "f").unwrap_err().code(), "CAL003");
}

#[test]
fn error_codes_are_stable() {
    let errors = [
        CalendarError::YearNotCovered { year: 2019, covered: vec![] },
        CalendarError::OutOfRange { date: d(2026, 1, 1), days: 1 },
        CalendarError::Parse { origin: String::new(), message: String::new() },
        CalendarError::InvalidData { origin: String::new(), message: String::new() },
        CalendarError::Io { path: PathBuf::new(), message: String::new() },
    ];
    let codes: Vec<_> = errors.iter().map(CalendarError::code).collect();
    assert_eq!(codes, ["CAL001", "CAL002", "CAL003", "CAL004", "CAL005"]);
}

#[test]
fn r0_2_corrections_and_second_notices_of_the_older_years() {
    let cal = cn();
    // Corrections recorded by generate.py, each with its reason in the year's checks.
    assert_eq!(
        cal.entry(d(2011, 6, 5)).unwrap().map(|e| (e.kind, e.name.as_str())),
        Some((DayKind::Holiday, "端午节"))
    );
    assert!(cal
        .year(2011)
        .unwrap()
        .checks()
        .iter()
        .any(|c| c.starts_with("Correction to chinese-days 1.5.7: 2011-06-05")));
    assert_eq!(cal.entry(d(2015, 9, 5)).unwrap().map(|e| e.kind), Some(DayKind::Holiday));
    // The 2015 victory-day holiday: 09-03 and 09-04 off, Sunday 09-06 worked, by its own notice.
    assert_eq!(cal.is_working_day(d(2015, 9, 4)), Ok(false));
    assert_eq!(cal.is_working_day(d(2015, 9, 6)), Ok(true));
    assert_eq!(
        cal.year(2015).unwrap().source().notices[1].title,
        "国务院关于中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日调休放假的通知"
    );
    // 2019: Labour Day made four days (05-01 … 05-04) by a second notice; 04-28 and 05-05 worked.
    assert_eq!(cal.year(2019).unwrap().source().notices[1].title, "国务院办公厅关于调整2019年劳动节假期安排的通知");
    assert_eq!(cal.is_working_day(d(2019, 5, 3)), Ok(false));
    assert_eq!(cal.is_working_day(d(2019, 5, 5)), Ok(true));
    // 2004: 元旦 was one day; Spring Festival 01-22 … 01-28 with 01-17 and 01-18 worked.
    assert_eq!(cal.is_working_day(d(2004, 1, 2)), Ok(true));
    assert_eq!(cal.is_working_day(d(2004, 1, 17)), Ok(true));
    assert_eq!(cal.add_workdays(d(2004, 1, 21), 1), Ok(d(2004, 1, 29)));
}
