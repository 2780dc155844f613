//! Schedules: frequencies and time zones (daylight saving included), `Lastrun` in every form,
//! the plan of one tick, and a simulated week over random graphs and frequencies.

use super::*;
use crate::graph::{LoadOptions, load_graph};
use chrono::TimeZone;
use orchestrator_protocol::ObjectId;
use proptest::prelude::*;

const HOUR: u64 = 3_600_000;
const MINUTE: u64 = 60_000;

fn utc() -> ScheduleZone {
    parse_zone("UTC").unwrap_or_else(|e| panic!("{e}"))
}

fn at(zone: ScheduleZone, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    zone.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .map(|t| t.timestamp_millis() as u64)
        .unwrap_or_else(|| panic!("no such time"))
}

fn graph(objects: &str) -> crate::graph::Graph {
    load_graph(objects.to_string(), LoadOptions::default())
        .graph
        .unwrap_or_else(|| panic!("a valid graph"))
}

#[test]
fn frequencies_and_zones_are_read_or_refused_with_the_reason() {
    for ok in [
        "0 * * * *",
        "*/15 2-4 * * 1-5",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
    ] {
        assert!(parse_frequency(ok).is_ok(), "{ok}");
    }
    for bad in ["every hour", "0 * * *", "0 0 * * * *", "61 * * * *", ""] {
        let why = parse_frequency(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(why.contains(&format!("{bad:?}")), "{why}");
    }
    assert!(parse_zone("Europe/Paris").is_ok());
    let why = parse_zone("Mars/Olympus").err().unwrap_or_default();
    assert!(why.contains("unknown time zone \"Mars/Olympus\""), "{why}");
}

#[test]
fn ticks_follow_the_zone_across_daylight_saving_changes() {
    let paris = parse_zone("Europe/Paris").unwrap_or_else(|e| panic!("{e}"));
    let daily = parse_frequency("30 2 * * *").unwrap_or_else(|e| panic!("{e}"));
    // Each day from the 27th of March to the 1st of April 2026 (clocks go forward on the 29th,
    // 02:30 does not exist that day) and around the 25th of October (back: 02:30 twice).
    for (from, to) in [
        (at(paris, 2026, 3, 27, 0, 0), 6),
        (at(paris, 2026, 10, 23, 0, 0), 6),
    ] {
        let mut t = from;
        let mut ticks = Vec::new();
        while let Some(next) = daily.next_tick(t, paris) {
            if next >= from + to * 24 * HOUR {
                break;
            }
            ticks.push(next);
            t = next;
        }
        assert_eq!(ticks.len(), to as usize, "one tick a day: {ticks:?}");
    }
    // In the zone, not in UTC: 02:30 in Paris in winter is 01:30 UTC.
    let tick = daily.latest_tick(at(utc(), 2026, 1, 15, 12, 0), paris);
    assert_eq!(tick, Some(at(utc(), 2026, 1, 15, 1, 30)));
}

#[test]
fn ticks_are_whole_minutes_whatever_the_moment_they_are_found_from() {
    let hourly = parse_frequency("0 * * * *").unwrap_or_else(|e| panic!("{e}"));
    let tick = at(utc(), 2026, 11, 30, 12, 0);
    for ms in [0, 318, 999] {
        let now = at(utc(), 2026, 11, 30, 12, 37) + ms;
        assert_eq!(hourly.latest_tick(now, utc()), Some(tick), "{ms}");
        assert_eq!(hourly.next_tick(now, utc()), Some(tick + HOUR), "{ms}");
        assert_eq!(hourly.latest_tick(tick + ms, utc()), Some(tick), "{ms}");
        assert_eq!(
            hourly.next_tick(tick + ms, utc()),
            Some(tick + HOUR),
            "{ms}"
        );
    }
}

#[test]
fn last_run_is_read_in_every_form_and_bad_ones_are_warnings() {
    let now = at(utc(), 2026, 11, 30, 12, 0);
    let read = |t: &str| parse_last_run(t, utc(), now);
    assert_eq!(read("null"), Ok((None, None)));
    assert_eq!(read("1764500000"), Ok((Some(1_764_500_000_000), None)));
    assert_eq!(
        read("2026-11-30T10:00:00Z"),
        Ok((Some(at(utc(), 2026, 11, 30, 10, 0)), None))
    );
    assert_eq!(
        read("2026-11-30T11:00:00+01:00"),
        Ok((Some(at(utc(), 2026, 11, 30, 10, 0)), None))
    );
    assert_eq!(
        read("2026-11-30 10:00:00"),
        Ok((Some(at(utc(), 2026, 11, 30, 10, 0)), None))
    );
    let (clamped, warning) = read("2030-01-01T00:00:00Z").unwrap_or_default();
    assert_eq!(clamped, Some(now));
    assert!(warning.unwrap_or_default().contains("in the future"));
    assert!(read("yesterday").is_err());
    assert!(
        read("1e300").is_err() && read("-5").is_err(),
        "no time at all"
    );
    // In a catalog: an invalid frequency is an error naming the object and field, an
    // unreadable Lastrun a warning, and the object never loaded.
    let g = graph(
        r#"[{"IdObjet":1001,"Fréquence":"sometimes","Lastrun":"yesterday"},
            {"IdObjet":1002,"Fréquence":"@daily","Lastrun":1764500000}]"#,
    );
    let (catalog, report) = Catalog::from_graph(&g, utc(), now);
    assert_eq!(report.error_count(), 1);
    assert_eq!(report.warning_count(), 1);
    let text = report.render(None);
    assert!(
        text.contains("1001") && text.contains("Fréquence") && text.contains("Lastrun"),
        "{text}"
    );
    assert_eq!(catalog.loaded, [None, Some(1_764_500_000_000)]);
    assert_eq!(
        catalog.frequencies.len(),
        1,
        "one distinct expression parsed once"
    );
}

/// raw 1001 (hourly) → std 2001 (follows) → app 3001 (daily); raw 1002 (hourly, fresh) → 2001.
fn layered() -> crate::graph::Graph {
    graph(
        r#"[{"IdObjet":1001,"Fréquence":"0 * * * *"},
            {"IdObjet":1002,"Fréquence":"0 * * * *"},
            {"IdObjet":2001,"IdObjet_Parent":"1001,1002"},
            {"IdObjet":3001,"IdObjet_Parent":2001,"Fréquence":"0 6 * * *"},
            {"IdObjet":3002,"IdObjet_Parent":2001,"EtatObjet":"inactif"}]"#,
    )
}

fn ids(g: &crate::graph::Graph, plan: &TickPlan) -> Vec<(u64, Why)> {
    plan.run
        .iter()
        .map(|&(i, w)| (g.objects[i as usize].id.0, w))
        .collect()
}

#[test]
fn a_tick_runs_what_is_due_its_stale_ancestors_and_its_followers() {
    let g = layered();
    let now = at(utc(), 2026, 11, 30, 6, 10);
    let hour = at(utc(), 2026, 11, 30, 6, 0);
    let (mut c, _) = Catalog::from_graph(&g, utc(), now);
    // Everything loaded at 05:30: both raws are due at 06:00, 2001 follows, 3001 is due.
    c.loaded = vec![Some(hour - 30 * MINUTE); 5];
    let plan = evaluate(&g, &c, now, utc());
    let due = Why::Due { tick_ms: hour };
    let follows = (
        2001,
        Why::FollowsRun {
            parent: ObjectId(1001),
        },
    );
    assert_eq!(
        ids(&g, &plan),
        [(1001, due), (1002, due), follows, (3001, due)]
    );
    // 1002 loaded at 06:05: fresh, skipped; 2001 and 3001 loaded at 06:06.
    c.loaded[1] = Some(hour + 5 * MINUTE);
    c.loaded[0] = Some(hour + 5 * MINUTE);
    c.loaded[2] = Some(hour + 6 * MINUTE);
    c.loaded[3] = Some(hour + 6 * MINUTE);
    assert!(
        evaluate(&g, &c, now, utc()).is_empty(),
        "nothing due twice for one tick"
    );
    // At 07:10 only the raws are due again; 3001 (daily at 06:00) is fresh.
    let later = now + HOUR;
    let plan = evaluate(&g, &c, later, utc());
    let due = Why::Due {
        tick_ms: hour + HOUR,
    };
    assert_eq!(ids(&g, &plan), [(1001, due), (1002, due), follows]);
    // A run of 3001 alone (say it failed at 06:00) takes its stale parent, not the fresh raws.
    c.loaded[3] = Some(hour - 30 * MINUTE);
    c.loaded[2] = Some(hour - 20 * MINUTE);
    let plan = evaluate(&g, &c, now, utc());
    assert_eq!(
        ids(&g, &plan),
        [
            (
                2001,
                Why::FollowsParent {
                    parent: ObjectId(1001)
                }
            ),
            (3001, Why::Due { tick_ms: hour }),
        ]
    );
    assert_eq!(plan.fresh.len(), 2, "both raws counted as loaded");
}

/// A random layered graph: `n` objects, each with up to two parents among the earlier ones, a
/// frequency (or none) from a few, and an initial load.
pub(super) fn random_graph(n: usize, seed: u64) -> (crate::graph::Graph, String) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let freqs = [
        "*/5 * * * *",
        "0 * * * *",
        "30 */6 * * *",
        "@daily",
        "0 9 * * 1-5",
    ];
    let objects: Vec<String> = (0..n)
        .map(|i| {
            let id = 1000 + i;
            let parents: Vec<String> = if i == 0 {
                vec![]
            } else {
                (0..rng.usize(0..3))
                    .map(|_| (1000 + rng.usize(0..i)).to_string())
                    .collect()
            };
            let freq = if i == 0 || rng.bool() {
                format!(r#","Fréquence":"{}""#, freqs[rng.usize(0..freqs.len())])
            } else {
                String::new()
            };
            format!(
                r#"{{"IdObjet":{id},"IdObjet_Parent":"{}"{freq}}}"#,
                parents.join(",")
            )
        })
        .collect();
    let text = format!("[{}]", objects.join(","));
    (graph(&text), text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A week in five-minute steps: whatever runs at a step loads at that step, parents before
    /// children. Every object with a frequency runs after each of its ticks before its next,
    /// never twice for one tick; nothing runs before a stale parent of the same step; a fresh
    /// ancestor is never run again.
    #[test]
    fn a_simulated_week_runs_every_tick_once_in_dependency_order(n in 2usize..25, seed in any::<u64>()) {
        let (g, _) = random_graph(n, seed);
        let start = at(utc(), 2026, 11, 23, 0, 0);
        let (mut c, report) = Catalog::from_graph(&g, utc(), start);
        prop_assert_eq!(report.error_count(), 0);
        let mut runs_for_tick: std::collections::HashMap<(u32, u64), u32> = Default::default();
        let step = 5 * MINUTE;
        let mut now = start;
        while now < start + 7 * 24 * HOUR {
            let plan = evaluate(&g, &c, now, utc());
            let mut loaded_now = vec![false; g.len()];
            for &(i, why) in &plan.run {
                // Parents that run at this step load before it.
                for &p in g.parents(i) {
                    let p_runs = plan.run.iter().any(|&(q, _)| q == p);
                    prop_assert!(!p_runs || loaded_now[p as usize], "{} before its parent", i);
                }
                if let Why::Due { tick_ms } = why {
                    let n = runs_for_tick.entry((i, tick_ms)).or_default();
                    *n += 1;
                    prop_assert_eq!(*n, 1, "object {} ran twice for tick {}", i, tick_ms);
                }
                c.loaded[i as usize] = Some(now);
                loaded_now[i as usize] = true;
            }
            for &f in &plan.fresh {
                prop_assert!(!loaded_now[f as usize], "a fresh ancestor ran");
            }
            // After the step, no object with a frequency is behind its latest tick.
            for i in 0..g.len() {
                if let Some(f) = c.frequency[i] {
                    let tick = c.frequencies[f as usize].latest_tick(now, utc());
                    prop_assert!(tick.is_none_or(|t| c.loaded[i].is_some_and(|at| at >= t)));
                }
            }
            now += step;
        }
    }
}
