//! Reading calendar years from a directory: the calendar's only I/O.
//!
//! A deployment adds a year the bundled calendar lacks (the State Council publishes the next
//! year's arrangement each autumn) or a local calendar without rebuilding: it drops `YYYY.json`
//! files in the bundled format into a directory and starts the server with it.

use std::fs;
use std::path::Path;

use super::{Calendar, CalendarError, YearCalendar};

impl Calendar {
    /// The bundled Chinese calendar with the years in `dir` merged over it: a file for a year
    /// the bundle has replaces that year whole; a file for another year adds it.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, CalendarError> {
        Ok(Self::chinese()?.with(read_dir(dir)?))
    }
}

/// Reads every `YYYY.json` in `dir` (not its subdirectories), in year order.
///
/// Other files are ignored, so a README or a generator script can sit beside the data; a `.json`
/// file whose name is not a year, or whose `year` differs from its name, is an error rather
/// than silently skipped, since it was most likely meant as data.
pub fn read_dir(dir: impl AsRef<Path>) -> Result<Vec<YearCalendar>, CalendarError> {
    let dir = dir.as_ref();
    let io = |path: &Path, e: std::io::Error| CalendarError::Io { path: path.to_owned(), message: e.to_string() };
    let mut years = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = item.map_err(|e| io(dir, e))?.path();
        if !path.is_file() || path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let origin = path.display().to_string();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let named: i32 = match stem.parse() {
            Ok(year) if stem.len() == 4 => year,
            _ => {
                return Err(CalendarError::InvalidData {
                    origin,
                    message: "a calendar file is named after its year: YYYY.json".to_owned(),
                })
            }
        };
        let text = fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let year = YearCalendar::parse(&text, &origin)?;
        if year.year() != named {
            return Err(CalendarError::InvalidData {
                origin,
                message: format!("the file is named {named} but holds year {}", year.year()),
            });
        }
        years.push(year);
    }
    years.sort_by_key(YearCalendar::year);
    Ok(years)
}
