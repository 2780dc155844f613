//! Object definitions in the old system's JSON format: reads each object of the array, keeps its
//! whole JSON for the workers, and reports every field problem with the object's id and index.

use crate::diagnostics::{Problem, Report};
use crate::parents::{number_to_id, parse_parents, type_name};
use orchestrator_protocol::{ObjectId, Zone};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// How urgent an object is (`Criticité`): orders waiting work after the critical path.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Criticality {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub fn parse(s: &str) -> Option<Criticality> {
        match s.trim().to_lowercase().as_str() {
            "low" | "faible" | "basse" => Some(Criticality::Low),
            "medium" | "moyenne" | "normal" | "normale" => Some(Criticality::Medium),
            "high" | "haute" | "élevée" | "elevee" => Some(Criticality::High),
            "critical" | "critique" => Some(Criticality::Critical),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

/// One data object, read from the file.
#[derive(Clone, Debug)]
pub struct ObjectDef {
    pub id: ObjectId,
    /// Position in the file's array.
    pub index: usize,
    pub name: String,
    pub zone: Zone,
    /// Distinct parents, in the order the file names them.
    pub parents: Vec<ObjectId>,
    pub criticality: Criticality,
    /// False when `EtatObjet` is present and not `actif`: not run, and its children treat it as
    /// already loaded outside the run.
    pub enabled: bool,
    /// `Fréquence` (cron), kept for scheduling by frequency.
    pub frequency: Option<String>,
    /// `Lastrun`, kept as written.
    pub last_run: Option<String>,
    /// The whole object as the user wrote it, handed to the worker.
    pub raw: Arc<RawValue>,
}

/// The fields the orchestrator reads; every other field stays in `raw`.
#[derive(Deserialize)]
struct KnownFields<'a> {
    #[serde(rename = "IdObjet", borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(rename = "IdObjet_Parent", borrow, default)]
    parents: Option<&'a RawValue>,
    #[serde(rename = "Zone", borrow, default)]
    zone: Option<&'a RawValue>,
    #[serde(rename = "NomObjet", borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(rename = "Criticité", borrow, default)]
    criticality: Option<&'a RawValue>,
    #[serde(rename = "EtatObjet", borrow, default)]
    state: Option<&'a RawValue>,
    #[serde(rename = "Fréquence", borrow, default)]
    frequency: Option<&'a RawValue>,
    #[serde(rename = "Lastrun", borrow, default)]
    last_run: Option<&'a RawValue>,
}

fn value_of(raw: Option<&RawValue>) -> Value {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null)
}

/// Reads one element of the array. Returns `None` (with errors in `report`) when the object
/// cannot be used; field-level oddities that still leave a usable object are warnings.
pub fn read_object(index: usize, raw: Box<RawValue>, report: &mut Report) -> Option<ObjectDef> {
    let text = raw.get();
    if !text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        report.push(Problem::error(
            Some(index),
            None,
            None,
            format!("expected an object, got {}", type_name(&v)),
        ));
        return None;
    }
    let known: KnownFields = match serde_json::from_str(text) {
        Ok(k) => k,
        Err(e) => {
            report.push(Problem::error(
                Some(index),
                None,
                None,
                format!("cannot read object: {e}"),
            ));
            return None;
        }
    };

    let id = match value_of(known.id) {
        Value::Number(n) => match number_to_id(&n) {
            Some(id) => id,
            None => {
                report.push(Problem::error(
                    Some(index),
                    None,
                    Some("IdObjet"),
                    format!("{n} is not a non-negative whole number"),
                ));
                return None;
            }
        },
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) => ObjectId(n),
            Err(_) => {
                report.push(Problem::error(
                    Some(index),
                    None,
                    Some("IdObjet"),
                    format!("{s:?} is not a numeric id"),
                ));
                return None;
            }
        },
        Value::Null => {
            report.push(Problem::error(
                Some(index),
                None,
                Some("IdObjet"),
                "missing: every object needs an id",
            ));
            return None;
        }
        other => {
            report.push(Problem::error(
                Some(index),
                None,
                Some("IdObjet"),
                format!(
                    "expected a number or a numeric string, got {}",
                    type_name(&other)
                ),
            ));
            return None;
        }
    };
    let here = |field: &'static str, msg: String| (Some(index), Some(id), Some(field), msg);
    let mut usable = true;

    let parents = match parse_parents(&value_of(known.parents)) {
        Ok(p) => {
            for (token, kept) in &p.noisy {
                let (i, o, f, m) = here(
                    "IdObjet_Parent",
                    format!(
                        "token {token:?} has other characters around its digits; read as parent {kept}"
                    ),
                );
                report.push(Problem::warning(i, o, f, m));
            }
            for rep in &p.repeated {
                let (i, o, f, m) = here(
                    "IdObjet_Parent",
                    format!("parent {rep} is named more than once; counted once"),
                );
                report.push(Problem::warning(i, o, f, m));
            }
            for bad in &p.invalid {
                let (i, o, f, m) = here("IdObjet_Parent", bad.clone());
                report.push(Problem::error(i, o, f, m));
                usable = false;
            }
            p.ids
        }
        Err(msg) => {
            let (i, o, f, m) = here("IdObjet_Parent", msg);
            report.push(Problem::error(i, o, f, m));
            usable = false;
            Vec::new()
        }
    };

    let legacy_zone = Zone::from_legacy_id(id.0);
    let zone = match value_of(known.zone) {
        Value::String(s) => match s.parse::<Zone>() {
            Ok(z) => {
                if let Some(l) = legacy_zone.filter(|l| *l != z) {
                    let (i, o, f, m) = here(
                        "Zone",
                        format!("zone {z} contradicts the numbering, which implies {l}"),
                    );
                    report.push(Problem::warning(i, o, f, m));
                }
                Some(z)
            }
            Err(e) => {
                let (i, o, f, m) = here("Zone", e.to_string());
                report.push(Problem::error(i, o, f, m));
                None
            }
        },
        Value::Null => {
            match legacy_zone {
                Some(z) => {
                    let (i, o, f, m) =
                        here("Zone", format!("missing; {z} derived from the numbering"));
                    report.push(Problem::warning(i, o, f, m));
                    Some(z)
                }
                None => {
                    let (i, o, f, m) = here("Zone", "missing, and the id is outside the 1000-3999 numbering that would imply one".to_string());
                    report.push(Problem::error(i, o, f, m));
                    None
                }
            }
        }
        other => {
            let (i, o, f, m) = here(
                "Zone",
                format!("expected a string, got {}", type_name(&other)),
            );
            report.push(Problem::error(i, o, f, m));
            None
        }
    };

    let name = match value_of(known.name) {
        Value::String(s) => s,
        Value::Null => id.to_string(),
        other => {
            let (i, o, f, m) = here(
                "NomObjet",
                format!("expected a string, got {}", type_name(&other)),
            );
            report.push(Problem::error(i, o, f, m));
            usable = false;
            String::new()
        }
    };

    let criticality = match value_of(known.criticality) {
        Value::Null => Criticality::default(),
        Value::String(s) => Criticality::parse(&s).unwrap_or_else(|| {
            let (i, o, f, m) = here(
                "Criticité",
                format!(
                    "unknown value {s:?}; using {}",
                    Criticality::default().as_str()
                ),
            );
            report.push(Problem::warning(i, o, f, m));
            Criticality::default()
        }),
        other => {
            let (i, o, f, m) = here(
                "Criticité",
                format!(
                    "expected a string, got {}; using {}",
                    type_name(&other),
                    Criticality::default().as_str()
                ),
            );
            report.push(Problem::warning(i, o, f, m));
            Criticality::default()
        }
    };

    let enabled = match value_of(known.state) {
        Value::Null => true,
        Value::String(s) => s.trim().eq_ignore_ascii_case("actif"),
        other => {
            let (i, o, f, m) = here(
                "EtatObjet",
                format!("expected a string, got {}", type_name(&other)),
            );
            report.push(Problem::error(i, o, f, m));
            usable = false;
            true
        }
    };

    let frequency = optional_text(
        value_of(known.frequency),
        "Fréquence",
        &here,
        report,
        &mut usable,
    );
    let last_run = optional_text(
        value_of(known.last_run),
        "Lastrun",
        &here,
        report,
        &mut usable,
    );

    let zone = zone?;
    if !usable {
        return None;
    }
    Some(ObjectDef {
        id,
        index,
        name,
        zone,
        parents,
        criticality,
        enabled,
        frequency,
        last_run,
        raw: Arc::from(raw),
    })
}

type Here<'a> = dyn Fn(
        &'static str,
        String,
    ) -> (
        Option<usize>,
        Option<ObjectId>,
        Option<&'static str>,
        String,
    ) + 'a;

fn optional_text(
    v: Value,
    field: &'static str,
    here: &Here<'_>,
    report: &mut Report,
    usable: &mut bool,
) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        other => {
            let (i, o, f, m) = here(
                field,
                format!("expected a string, got {}", type_name(&other)),
            );
            report.push(Problem::error(i, o, f, m));
            *usable = false;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> (Option<ObjectDef>, Report) {
        let mut report = Report::default();
        let raw = RawValue::from_string(json.to_string()).unwrap_or_else(|e| panic!("{e}"));
        (read_object(0, raw, &mut report), report)
    }

    #[test]
    fn reads_a_full_old_object_and_keeps_every_field() {
        let (o, r) = read(
            r#"{"IdObjet":2005,"IdObjet_Parent":"1005","NomObjet":"Projects","Criticité":"low","Fréquence":"0 * * * *","EtatObjet":"actif","Zone":"2-Standardized","Lastrun":null,"Format":"parquet"}"#,
        );
        assert!(r.problems.is_empty(), "{r:?}");
        let o = o.unwrap_or_else(|| panic!("object not read"));
        assert_eq!(o.id, ObjectId(2005));
        assert_eq!(o.parents, vec![ObjectId(1005)]);
        assert_eq!(o.zone, Zone::Standardized);
        assert_eq!(o.criticality, Criticality::Low);
        assert_eq!(o.frequency.as_deref(), Some("0 * * * *"));
        assert!(o.enabled);
        assert!(o.raw.get().contains("\"Format\":\"parquet\""));
    }

    #[test]
    fn numeric_string_id_and_derived_zone() {
        let (o, r) = read(r#"{"IdObjet":"3001","IdObjet_Parent":null}"#);
        assert_eq!(
            o.map(|o| (o.id, o.zone)),
            Some((ObjectId(3001), Zone::Application))
        );
        assert_eq!(r.warning_count(), 1);
        assert!(r.problems[0].message.contains("derived"));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let (o, r) = read(r#"{"IdObjet":[1],"Zone":"1-Raw"}"#);
        assert!(o.is_none());
        assert_eq!(r.problems[0].field, Some("IdObjet"));
        let (o, r) = read(r#"{"IdObjet":1001,"Zone":7,"IdObjet_Parent":{"x":1}}"#);
        assert!(o.is_none());
        let fields: Vec<_> = r.problems.iter().filter_map(|p| p.field).collect();
        assert_eq!(fields, vec!["IdObjet_Parent", "Zone"]);
    }

    #[test]
    fn disabled_unknown_criticality_and_zone_mismatch() {
        let (o, r) = read(
            r#"{"IdObjet":1001,"Zone":"2-Standardized","EtatObjet":"inactif","Criticité":"urgent"}"#,
        );
        let o = o.unwrap_or_else(|| panic!("object not read"));
        assert!(!o.enabled);
        assert_eq!(o.criticality, Criticality::Medium);
        assert_eq!(r.warning_count(), 2);
        assert_eq!(r.error_count(), 0);
    }
}
