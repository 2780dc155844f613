//! Object definitions in the old system's JSON format: reads each object of the array, keeps its
//! whole JSON for the workers, and reports every field problem with the object's id and index.

use crate::diagnostics::{Problem, Report};
use crate::parents::{
    ParsedParents, number_to_id, parse_parent_number, parse_parent_text, parse_parents, shorten,
    type_name,
};
use orchestrator_protocol::{ObjectId, RawJson, Zone};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
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
    /// English or French names, any case.
    pub fn parse(s: &str) -> Option<Criticality> {
        const NAMES: [(&str, Criticality); 12] = [
            ("low", Criticality::Low),
            ("faible", Criticality::Low),
            ("basse", Criticality::Low),
            ("medium", Criticality::Medium),
            ("moyenne", Criticality::Medium),
            ("normal", Criticality::Medium),
            ("normale", Criticality::Medium),
            ("high", Criticality::High),
            ("haute", Criticality::High),
            ("élevée", Criticality::High),
            ("critical", Criticality::Critical),
            ("critique", Criticality::Critical),
        ];
        let t = s.trim();
        let found = NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(t));
        let found = found.or_else(|| {
            let lower = (!t.is_ascii()).then(|| t.to_lowercase())?;
            NAMES.iter().find(|(name, _)| *name == lower)
        });
        found.map(|(_, c)| *c)
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
    pub parents: Box<[ObjectId]>,
    pub criticality: Criticality,
    /// False when `EtatObjet` is present and not `actif`: not run, and its children treat it as
    /// already loaded outside the run.
    pub enabled: bool,
    /// `Fréquence` (cron), kept for scheduling by frequency.
    pub frequency: Option<Box<str>>,
    /// `Lastrun`, kept as written.
    pub last_run: Option<Box<str>>,
    /// The whole object as the user wrote it, handed to the worker.
    pub raw: RawJson,
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

/// A field's value, read without allocating in the common cases (plain strings, numbers).
enum Scalar<'a> {
    Null,
    Str(Cow<'a, str>),
    Num(serde_json::Number),
    Other(Value),
    /// Valid JSON syntax that names no value we can hold (a lone surrogate in a string, a
    /// number out of range, nesting past the parser's depth), with the reason.
    Unreadable(String),
}

impl Scalar<'_> {
    /// Why this value is not of the `expected` type.
    fn wrong(&self, expected: &str) -> String {
        let got = match self {
            Scalar::Null => "null",
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Other(v) => type_name(v),
            Scalar::Unreadable(why) => return why.clone(),
        };
        format!("expected {expected}, got {got}")
    }
}

/// A value that could not be read, as a message naming its text and the parser's reason.
fn unreadable(text: &str, e: &serde_json::Error) -> Scalar<'static> {
    let reason = e.to_string();
    let reason = reason.split(" at line ").next().unwrap_or(&reason);
    Scalar::Unreadable(format!("cannot read {}: {reason}", shorten(text)))
}

fn scalar(raw: Option<&RawValue>) -> Scalar<'_> {
    let Some(raw) = raw else { return Scalar::Null };
    let t = raw.get();
    match t.as_bytes().first() {
        Some(b'"') if !t.contains('\\') && t.len() >= 2 => {
            Scalar::Str(Cow::Borrowed(&t[1..t.len() - 1]))
        }
        Some(b'"') => serde_json::from_str::<String>(t)
            .map_or_else(|e| unreadable(t, &e), |s| Scalar::Str(Cow::Owned(s))),
        Some(b'-' | b'0'..=b'9') => serde_json::from_str::<serde_json::Number>(t)
            .map_or_else(|e| unreadable(t, &e), Scalar::Num),
        Some(b'n') => Scalar::Null,
        _ => serde_json::from_str::<Value>(t).map_or_else(|e| unreadable(t, &e), Scalar::Other),
    }
}

/// Reads one element of the array, `raw`, which lies inside `text` (the whole file). Returns
/// `None` (with errors in `report`) when the object cannot be used; oddities that still leave a
/// usable object are warnings.
pub fn read_object(
    index: usize,
    text: &Arc<String>,
    raw: &RawValue,
    report: &mut Report,
) -> Option<ObjectDef> {
    let json = raw.get();
    if !json.starts_with('{') {
        let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        report.push(Problem::error(
            Some(index),
            None,
            None,
            format!("expected an object, got {}", type_name(&v)),
        ));
        return None;
    }
    let known: KnownFields = match serde_json::from_str(json) {
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

    let id = match scalar(known.id) {
        Scalar::Num(n) => match number_to_id(&n) {
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
        Scalar::Str(s) => match s.trim().parse::<u64>() {
            Ok(n) => ObjectId(n),
            Err(_) => {
                report.push(Problem::error(
                    Some(index),
                    None,
                    Some("IdObjet"),
                    format!("{:?} is not a numeric id", shorten(&s)),
                ));
                return None;
            }
        },
        Scalar::Null => {
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
                other.wrong("a number or a numeric string"),
            ));
            return None;
        }
    };
    let mut usable = true;
    let error = |report: &mut Report, field: &'static str, msg: String| {
        report.push(Problem::error(Some(index), Some(id), Some(field), msg));
    };
    let warn = |report: &mut Report, field: &'static str, msg: String| {
        report.push(Problem::warning(Some(index), Some(id), Some(field), msg));
    };

    let parsed = match scalar(known.parents) {
        Scalar::Null => Ok(ParsedParents::default()),
        Scalar::Str(s) => Ok(parse_parent_text(&s)),
        Scalar::Num(n) => Ok(parse_parent_number(&n)),
        Scalar::Other(v) => parse_parents(&v),
        Scalar::Unreadable(why) => Err(why),
    };
    let parents = match parsed {
        Ok(p) => {
            for (token, kept) in &p.noisy {
                warn(
                    report,
                    "IdObjet_Parent",
                    format!(
                        "token {token:?} has other characters around its digits; read as parent {kept}"
                    ),
                );
            }
            for rep in &p.repeated {
                warn(
                    report,
                    "IdObjet_Parent",
                    format!("parent {rep} is named more than once; counted once"),
                );
            }
            for bad in &p.invalid {
                error(report, "IdObjet_Parent", bad.clone());
                usable = false;
            }
            p.ids.into_boxed_slice()
        }
        Err(msg) => {
            error(report, "IdObjet_Parent", msg);
            usable = false;
            Box::default()
        }
    };

    let legacy_zone = Zone::from_legacy_id(id.0);
    let zone = match scalar(known.zone) {
        Scalar::Str(s) => match s.parse::<Zone>() {
            Ok(z) => {
                if let Some(l) = legacy_zone.filter(|l| *l != z) {
                    warn(
                        report,
                        "Zone",
                        format!("zone {z} contradicts the numbering, which implies {l}"),
                    );
                }
                Some(z)
            }
            Err(e) => {
                error(report, "Zone", e.to_string());
                None
            }
        },
        Scalar::Null => {
            match legacy_zone {
                Some(z) => {
                    warn(
                        report,
                        "Zone",
                        format!("missing; {z} derived from the numbering"),
                    );
                    Some(z)
                }
                None => {
                    error(report, "Zone", "missing, and the id is outside the 1000-3999 numbering that would imply one".to_string());
                    None
                }
            }
        }
        other => {
            error(report, "Zone", other.wrong("a string"));
            None
        }
    };

    let name = match scalar(known.name) {
        Scalar::Str(s) => s.into_owned(),
        Scalar::Null => id.to_string(),
        other => {
            error(report, "NomObjet", other.wrong("a string"));
            usable = false;
            String::new()
        }
    };

    let criticality = match scalar(known.criticality) {
        Scalar::Null => Criticality::default(),
        Scalar::Str(s) => Criticality::parse(&s).unwrap_or_else(|| {
            warn(
                report,
                "Criticité",
                format!(
                    "unknown value {s:?}; using {}",
                    Criticality::default().as_str()
                ),
            );
            Criticality::default()
        }),
        other => {
            warn(
                report,
                "Criticité",
                format!(
                    "{}; using {}",
                    other.wrong("a string"),
                    Criticality::default().as_str()
                ),
            );
            Criticality::default()
        }
    };

    let enabled = match scalar(known.state) {
        Scalar::Null => true,
        Scalar::Str(s) => s.trim().eq_ignore_ascii_case("actif"),
        other => {
            error(report, "EtatObjet", other.wrong("a string"));
            usable = false;
            true
        }
    };

    let mut text_field =
        |raw: Option<&RawValue>, field: &'static str, report: &mut Report| match scalar(raw) {
            Scalar::Null => None,
            Scalar::Str(s) => Some(Box::from(s.as_ref())),
            Scalar::Num(n) => Some(n.to_string().into_boxed_str()),
            other => {
                report.push(Problem::error(
                    Some(index),
                    Some(id),
                    Some(field),
                    other.wrong("a string"),
                ));
                usable = false;
                None
            }
        };
    let frequency = text_field(known.frequency, "Fréquence", report);
    let last_run = text_field(known.last_run, "Lastrun", report);

    let zone = zone?;
    if !usable {
        return None;
    }
    // Where this object lies in the file: computed from the slice's address, no copy made.
    let start = (json.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    let raw = RawJson::slice(text.clone(), start..start + json.len())
        .filter(|r| r.get().as_ptr() == json.as_ptr())
        .unwrap_or_else(|| RawJson::from_string(json.to_string()));
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
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> (Option<ObjectDef>, Report) {
        let mut report = Report::default();
        let text = Arc::new(json.to_string());
        let raw: &RawValue = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        (read_object(0, &text, raw, &mut report), report)
    }

    #[test]
    fn reads_a_full_old_object_and_keeps_every_field() {
        let (o, r) = read(
            r#"{"IdObjet":2005,"IdObjet_Parent":"1005","NomObjet":"Projects","Criticité":"low","Fréquence":"0 * * * *","EtatObjet":"actif","Zone":"2-Standardized","Lastrun":null,"Format":"parquet"}"#,
        );
        assert!(r.problems.is_empty(), "{r:?}");
        let o = o.unwrap_or_else(|| panic!("object not read"));
        assert_eq!(o.id, ObjectId(2005));
        assert_eq!(&*o.parents, &[ObjectId(1005)]);
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
