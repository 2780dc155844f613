//! The timetable: a tick started once across restarts, missed ticks caught up once or skipped,
//! pauses, triggers, and the objects of a run as their own JSON.

use super::*;
use crate::graph::{LoadOptions, MissingParents, load_graph};
use chrono::TimeZone;
use orchestrator_protocol::ObjectId;

const MINUTE: u64 = 60_000;

fn utc() -> ScheduleZone {
    parse_zone("UTC").unwrap_or_else(|e| panic!("{e}"))
}

fn at(h: u32, mi: u32) -> u64 {
    utc()
        .with_ymd_and_hms(2026, 11, 30, h, mi, 0)
        .earliest()
        .map(|t| t.timestamp_millis() as u64)
        .unwrap_or_else(|| panic!("no such time"))
}

/// raw 1001 hourly → std 2001 (follows) → app 3001 daily at 06:00; raw 1002 hourly at :30.
const OBJECTS: &str = r#"[{"IdObjet":1001,"Fréquence":"0 * * * *"},
    {"IdObjet":1002,"Fréquence":"30 * * * *","EtatObjet":"actif"},
    {"IdObjet":2001,"IdObjet_Parent":"1001,1002"},
    {"IdObjet":3001,"IdObjet_Parent":2001,"Fréquence":"0 6 * * *"},
    {"IdObjet":3002,"IdObjet_Parent":2001,"EtatObjet":"inactif"}]"#;

fn timetable(catchup: Catchup, state: ScheduleState, now: u64, loaded: u64) -> Timetable {
    let g = load_graph(OBJECTS.to_string(), LoadOptions::default())
        .graph
        .unwrap_or_else(|| panic!("a valid graph"));
    let (mut c, _) = Catalog::from_graph(&g, utc(), now);
    c.loaded = vec![Some(loaded); g.len()];
    Timetable::new(g, c, utc(), catchup, state, now)
}

fn ids(run: &TickRun) -> Vec<u64> {
    let g = load_graph(
        run.objects.clone(),
        LoadOptions {
            missing_parents: MissingParents::External,
            ..LoadOptions::default()
        },
    );
    let g = g
        .graph
        .unwrap_or_else(|| panic!("the run's objects load: {:?}", g.report));
    g.objects.iter().map(|o| o.id.0).collect()
}

#[test]
fn missed_ticks_make_one_run_at_start_up_and_a_started_tick_never_starts_again() {
    // Down since 02:10 (loaded then), up at 06:40: 03:00..06:30 missed; one run at once.
    let now = at(6, 40);
    let mut t = timetable(Catchup::Once, ScheduleState::default(), now, at(2, 10));
    assert_eq!(t.next_wake(now), Some(now), "caught up at once");
    let run = t
        .tick(now)
        .unwrap_or_else(|| panic!("the missed ticks run"));
    assert_eq!(
        run.run_id.as_str(),
        "tick-20261130-063000",
        "named by the latest tick"
    );
    assert_eq!(ids(&run), [1001, 1002, 2001, 3001]);
    assert_eq!(t.state().ticked_ms, Some(at(6, 30)));
    // The same tick, again (a restart with the state stored with the run): nothing.
    assert!(t.tick(now + MINUTE).is_none());
    let mut again = timetable(Catchup::Once, t.state().clone(), now, at(2, 10));
    assert!(
        again.tick(now).is_none(),
        "a stored tick is never started twice"
    );
    // The next wake is the next tick after the stored one.
    assert_eq!(again.next_wake(now), Some(at(7, 0)));
    // Nor when the restart's moment has more milliseconds than the one it was found at.
    let mut later = timetable(Catchup::Once, t.state().clone(), now + 900, at(2, 10));
    assert!(
        later.tick(now + 900).is_none(),
        "the same tick, found at another moment"
    );
}

#[test]
fn catchup_none_skips_missed_ticks_and_runs_the_next() {
    let now = at(6, 40);
    let mut t = timetable(Catchup::None, ScheduleState::default(), now, at(2, 10));
    assert_eq!(t.next_wake(now), Some(at(7, 0)));
    assert!(t.tick(now).is_none(), "nothing due for a skipped tick");
    let run = t
        .tick(at(7, 0))
        .unwrap_or_else(|| panic!("the 07:00 tick runs"));
    // 1001 is due at 07:00; 1002 (stale since 02:10) runs as its child's stale ancestor; 3001
    // (daily at 06:00, skipped) does not.
    assert_eq!(ids(&run), [1001, 1002, 2001]);
}

#[test]
fn pauses_hold_ticks_and_objects_and_triggers_run_an_object_with_its_stale_ancestors() {
    let now = at(7, 0);
    let mut t = timetable(Catchup::Once, ScheduleState::default(), now, at(6, 50));
    t.set_paused(None, true);
    assert!(t.tick(now).is_none(), "paused");
    assert_eq!(
        t.state().ticked_ms,
        Some(now),
        "a paused tick counts as handled"
    );
    t.set_paused(None, false);
    assert!(t.set_paused(Some(ObjectId(1001)), true));
    assert!(!t.set_paused(Some(ObjectId(9)), true), "unknown object");
    let run = t.tick(at(7, 30)).unwrap_or_else(|| panic!("1002 is due"));
    assert_eq!(
        ids(&run),
        [1002, 2001],
        "1001 paused: neither due nor followed"
    );
    for id in [1002, 2001] {
        t.loaded(ObjectId(id), at(7, 31));
    }
    t.loaded(ObjectId(2001), at(7, 1)); // an earlier load never replaces a later one
    // A trigger of 3001: 2001 is fresh (07:31), so 3001 alone; of 1001: its followers too.
    let run = t
        .trigger(ObjectId(3001), at(7, 40), 1)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&run), [3001]);
    assert!(
        run.run_id
            .as_str()
            .starts_with("trigger-20261130-074000-3001-")
    );
    let run = t
        .trigger(ObjectId(1001), at(7, 40), 2)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&run), [1001, 2001]);
    assert_eq!(
        t.trigger(ObjectId(4242), now, 0).err(),
        Some(TriggerError::Unknown(ObjectId(4242)))
    );
    assert_eq!(
        t.trigger(ObjectId(3002), now, 0).err(),
        Some(TriggerError::Inactive(ObjectId(3002)))
    );
}

#[test]
fn each_object_says_where_it_stands_and_each_zone_how_stale_it_is() {
    // Everything loaded at 05:50; at 06:10 the raws and 3001 missed their 06:00 tick.
    let now = at(6, 10);
    let mut t = timetable(Catchup::Once, ScheduleState::default(), now, at(5, 50));
    t.loaded(ObjectId(1002), at(6, 5));
    let status = t.status(now);
    let by_id = |id: u64| {
        status
            .iter()
            .find(|s| s.id.0 == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(by_id(1001).freshness, Freshness::Due);
    assert_eq!(by_id(1001).why, Some(Why::Due { tick_ms: at(6, 0) }));
    assert_eq!(by_id(1001).next_tick_ms, Some(at(7, 0)));
    assert_eq!(by_id(1002).freshness, Freshness::Fresh);
    assert_eq!(by_id(1002).next_tick_ms, Some(at(6, 30)));
    assert_eq!(
        by_id(2001).freshness,
        Freshness::Due,
        "follows 1002's newer load"
    );
    assert_eq!(by_id(3002).freshness, Freshness::Inactive);
    let zones = t.freshness(now);
    assert_eq!(
        zones[0],
        (1, 10 * MINUTE),
        "1001, ten minutes past its tick"
    );
    assert_eq!(zones[2], (1, 10 * MINUTE), "3001");
    assert_eq!(zones[1], (0, 0), "no frequency in the standardized zone");
    t.set_paused(Some(ObjectId(1001)), true);
    assert_eq!(t.status(now)[0].freshness, Freshness::Paused);
    assert_eq!(
        t.freshness(now)[0],
        (0, 0),
        "a paused object is not counted"
    );
}

#[test]
fn a_replaced_catalog_keeps_loads_ticks_and_the_pauses_of_objects_still_there() {
    let now = at(7, 10);
    let mut t = timetable(Catchup::Once, ScheduleState::default(), now, at(7, 5));
    assert!(t.tick(now).is_none(), "everything loaded since 07:00");
    t.set_paused(Some(ObjectId(1001)), true);
    t.set_paused(Some(ObjectId(3001)), true);
    // 3001 goes, 1003 comes (never loaded, hourly).
    let text = r#"[{"IdObjet":1001,"Fréquence":"0 * * * *"},
        {"IdObjet":1003,"Fréquence":"0 * * * *"},
        {"IdObjet":2001,"IdObjet_Parent":"1001,1003"}]"#;
    let g = load_graph(text.to_string(), LoadOptions::default())
        .graph
        .unwrap_or_else(|| panic!("valid"));
    let (c, _) = Catalog::from_graph(&g, utc(), now);
    t.replace(g, c);
    assert_eq!(t.state().ticked_ms, Some(at(7, 0)));
    assert_eq!(
        t.state()
            .paused_objects
            .iter()
            .map(|o| o.0)
            .collect::<Vec<_>>(),
        [1001]
    );
    assert_eq!(t.catalog().loaded, [Some(at(7, 5)), None, Some(at(7, 5))]);
    let run = t.tick(at(8, 0)).unwrap_or_else(|| panic!("08:00 runs"));
    assert_eq!(ids(&run), [1003, 2001], "1001 still paused");
    assert_ne!(catalog_hash("[]"), catalog_hash("[ ]"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// A week driven by the timetable itself (wake at `next_wake`, `tick`, the run's objects
    /// load a minute later), with restarts from the stored state now and then: every tick of
    /// every object is followed by a load of it before its next tick, and no object runs twice
    /// for one tick.
    #[test]
    fn a_week_driven_by_the_timetable_runs_every_tick_once_across_restarts(
        n in 2usize..20,
        seed in proptest::prelude::any::<u64>(),
        restart_every in 3usize..40,
    ) {
        let (g, text) = super::tests::random_graph(n, seed);
        let start = at(0, 0) - 7 * 24 * 60 * MINUTE;
        let end = start + 7 * 24 * 60 * MINUTE;
        let (c, _) = Catalog::from_graph(&g, utc(), start);
        let mut t = Timetable::new(g, c, utc(), Catchup::Once, ScheduleState::default(), start);
        let mut seen = std::collections::HashSet::new();
        let mut loads: Vec<Vec<u64>> = vec![Vec::new(); n];
        let (mut now, mut ticks) = (start, 0usize);
        while let Some(wake) = t.next_wake(now) {
            now = now.max(wake);
            if now >= end {
                break;
            }
            if let Some(run) = t.tick(now) {
                for &(i, why) in &run.plan.run {
                    if let Why::Due { tick_ms } = why {
                        proptest::prop_assert!(seen.insert((i, tick_ms)), "{} twice for {}", i, tick_ms);
                    }
                    let id = t.graph().objects[i as usize].id;
                    t.loaded(id, now + MINUTE);
                    loads[i as usize].push(now + MINUTE);
                }
            }
            ticks += 1;
            if ticks % restart_every == 0 {
                // A restart: the definitions again, the loads and the state as stored.
                let g = load_graph(text.clone(), LoadOptions::default()).graph.unwrap_or_else(|| panic!("valid"));
                let (mut c, _) = Catalog::from_graph(&g, utc(), now);
                c.loaded = t.catalog().loaded.clone();
                t = Timetable::new(g, c, utc(), Catchup::Once, t.state().clone(), now);
            }
        }
        // Every tick of every object with a frequency, up to the last hour, was loaded after.
        let c = t.catalog();
        for (i, loaded) in loads.iter().enumerate() {
            let Some(f) = c.frequency[i] else { continue };
            let f = &c.frequencies[f as usize];
            let mut tick = f.next_tick(start, utc());
            while let Some(tk) = tick.filter(|&tk| tk < end - 60 * MINUTE) {
                let next = f.next_tick(tk, utc()).unwrap_or(u64::MAX);
                proptest::prop_assert!(
                    loaded.iter().any(|&l| l >= tk && l <= next.max(tk + 2 * MINUTE)),
                    "object {} not loaded after its tick {}", i, tk
                );
                tick = Some(next);
            }
        }
    }
}
