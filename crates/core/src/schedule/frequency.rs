//! A `Fréquence`: a cron expression of five fields, or `@hourly`, `@daily`, `@weekly`,
//! `@monthly` (and `@yearly`), read by croner; its ticks in the schedule's time zone.

use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;
use std::str::FromStr;

/// The time zone ticks are evaluated in (`SCHEDULE_TIMEZONE`, an IANA name; default UTC).
pub type ScheduleZone = Tz;

/// An IANA time zone name (`Europe/Paris`, `UTC`), or why it is not one.
pub fn parse_zone(name: &str) -> Result<ScheduleZone, String> {
    Tz::from_str(name.trim()).map_err(|_| {
        format!("unknown time zone {name:?}: expected an IANA name such as UTC or Europe/Paris")
    })
}

/// A parsed frequency.
#[derive(Clone, Debug)]
pub struct Frequency {
    /// The expression as written.
    pub text: Box<str>,
    cron: Cron,
}

/// The frequency `text` means, or why it means none. Six-field expressions (with seconds) are
/// refused: a tick is a minute at the finest.
pub fn parse_frequency(text: &str) -> Result<Frequency, String> {
    let t = text.trim();
    if !t.starts_with('@') && t.split_whitespace().count() != 5 {
        return Err(format!(
            "{text:?} is not a cron expression of 5 fields (minute hour day month weekday) or @hourly, @daily, @weekly, @monthly"
        ));
    }
    let cron =
        Cron::from_str(t).map_err(|e| format!("{text:?} is not a valid cron expression: {e}"))?;
    Ok(Frequency {
        text: t.into(),
        cron,
    })
}

impl Frequency {
    /// Its latest tick at or before `now_ms` in `zone` (Unix milliseconds), if it ever ticked.
    /// Across a daylight-saving change, croner gives the local times that exist: a skipped
    /// hour's tick falls at the change, a repeated hour ticks once.
    pub fn latest_tick(&self, now_ms: u64, zone: ScheduleZone) -> Option<u64> {
        let now = zone.timestamp_millis_opt(whole_second(now_ms)).single()?;
        let tick = self.cron.find_previous_occurrence(&now, true).ok()?;
        u64::try_from(tick.timestamp_millis())
            .ok()
            .map(|t| t - t % 1000)
    }

    /// Its first tick after `now_ms` in `zone`.
    pub fn next_tick(&self, now_ms: u64, zone: ScheduleZone) -> Option<u64> {
        let now = zone.timestamp_millis_opt(whole_second(now_ms)).single()?;
        let tick = self.cron.find_next_occurrence(&now, false).ok()?;
        u64::try_from(tick.timestamp_millis())
            .ok()
            .map(|t| t - t % 1000)
    }
}

/// `ms` without its milliseconds: croner keeps the fraction of the moment it starts from, so a
/// tick found from 12:37:00.318 would be 12:37:00.318, and the same tick found later another
/// moment: ticks are whole minutes, and compared as such (a stored tick is never started again).
fn whole_second(ms: u64) -> i64 {
    (ms - ms % 1000) as i64
}
