//! The catalog a schedule reads: per object of a graph, its frequency (an index into the
//! distinct expressions, parsed once each), whether it is active, and its latest load. Built
//! from the objects' `Fréquence`, `EtatObjet` and `Lastrun`, with a problem per object and field
//! that cannot be read.

use super::frequency::{Frequency, ScheduleZone, parse_frequency};
use super::last_load::parse_last_run;
use crate::diagnostics::{Problem, Report};
use crate::graph::Graph;
use std::collections::HashMap;

/// When an object last loaded (Unix milliseconds; run and attempt are the store's to keep).
pub type LoadedAt = Option<u64>;

/// What a schedule needs of each object, by the graph's index.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// The distinct frequencies.
    pub frequencies: Vec<Frequency>,
    /// Each object's frequency (index into `frequencies`), if it has one.
    pub frequency: Vec<Option<u32>>,
    /// `EtatObjet` is `actif` (or absent): only an active object is ever due.
    pub active: Vec<bool>,
    /// Each object's latest load.
    pub loaded: Vec<LoadedAt>,
    /// Ticks at or before this moment are not due (skipped: `SCHEDULE_CATCHUP=none`).
    pub ticks_after: u64,
}

impl Catalog {
    /// The catalog of `graph`, `Lastrun` read in `zone` and clamped to `now_ms`. An invalid
    /// `Fréquence` is an error naming the object and field; an unreadable `Lastrun` a warning
    /// (the object is taken as never loaded), as is one in the future (taken as now).
    pub fn from_graph(graph: &Graph, zone: ScheduleZone, now_ms: u64) -> (Catalog, Report) {
        let mut report = Report::default();
        let mut known: HashMap<&str, Result<u32, String>> = HashMap::new();
        let mut catalog = Catalog {
            frequencies: Vec::new(),
            frequency: Vec::with_capacity(graph.len()),
            active: Vec::with_capacity(graph.len()),
            loaded: Vec::with_capacity(graph.len()),
            ticks_after: 0,
        };
        for o in &graph.objects {
            let frequency = match o.frequency.as_deref().map(str::trim) {
                None | Some("") | Some("null") => None,
                Some(text) => {
                    let parsed = known.entry(text).or_insert_with(|| {
                        parse_frequency(text).map(|f| {
                            catalog.frequencies.push(f);
                            catalog.frequencies.len() as u32 - 1
                        })
                    });
                    match parsed {
                        Ok(i) => Some(*i),
                        Err(why) => {
                            let p = Problem::error(
                                Some(o.index),
                                Some(o.id),
                                Some("Fréquence"),
                                why.clone(),
                            );
                            report.push(p);
                            None
                        }
                    }
                }
            };
            let loaded = match o.last_run.as_deref() {
                None => None,
                Some(text) => match parse_last_run(text, zone, now_ms) {
                    Ok((at, warning)) => {
                        if let Some(w) = warning {
                            report.push(Problem::warning(
                                Some(o.index),
                                Some(o.id),
                                Some("Lastrun"),
                                w,
                            ));
                        }
                        at
                    }
                    Err(why) => {
                        let why = format!("{why}: taken as never loaded");
                        report.push(Problem::warning(
                            Some(o.index),
                            Some(o.id),
                            Some("Lastrun"),
                            why,
                        ));
                        None
                    }
                },
            };
            catalog.frequency.push(frequency);
            catalog.active.push(o.enabled);
            catalog.loaded.push(loaded);
        }
        (catalog, report)
    }
}
