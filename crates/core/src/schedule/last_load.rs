//! `Lastrun`: when an object was last loaded before the orchestrator knew it, as Unix seconds
//! or an ISO 8601 time (with an offset, or taken in the schedule's time zone).

use super::frequency::ScheduleZone;
use chrono::{DateTime, NaiveDateTime, TimeZone};

/// 9999-12-31T23:59:59Z: later Unix seconds name no time a schedule can use.
const LATEST_SECONDS: f64 = 253_402_300_799.0;

/// The Unix milliseconds `text` names, or why it names none (the caller warns, and takes the
/// object as never loaded). A time after `now_ms` is clamped to it, with a warning.
pub fn parse_last_run(
    text: &str,
    zone: ScheduleZone,
    now_ms: u64,
) -> Result<(Option<u64>, Option<String>), String> {
    let t = text.trim().trim_matches('"');
    if t.is_empty() || t == "null" {
        return Ok((None, None));
    }
    let ms = if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=LATEST_SECONDS).contains(&secs) {
            return Err(format!(
                "{text:?} is not a time (Unix seconds up to the year 9999)"
            ));
        }
        (secs * 1000.0).round() as u64
    } else if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        at.timestamp_millis().max(0) as u64
    } else {
        let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d"]
            .iter()
            .find_map(|f| {
                NaiveDateTime::parse_from_str(t, f).ok().or_else(|| {
                    chrono::NaiveDate::parse_from_str(t, f)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
            })
            .ok_or_else(|| format!("{text:?} is neither Unix seconds nor an ISO 8601 time"))?;
        let at = zone
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(|| format!("{text:?} does not exist in {zone}"))?;
        at.timestamp_millis().max(0) as u64
    };
    if ms > now_ms {
        let warning = format!("{text:?} is in the future: taken as now");
        return Ok((Some(now_ms), Some(warning)));
    }
    Ok((Some(ms), None))
}
