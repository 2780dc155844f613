//! Object definitions in the old system's JSON format: reads each object of the array, keeps its
//! whole JSON for the workers, and reports every field problem with the object's id and index.

use crate::diagnostics::{Problem, Report};
use crate::object_fields::{Fields, KnownFields, read_id};
use crate::parents::type_name;
use orchestrator_protocol::{ObjectId, RawJson, Zone};
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
        let got = format!("expected an object, got {}", type_name(&v));
        report.push(Problem::error(Some(index), None, None, got));
        return None;
    }
    let known: KnownFields = match serde_json::from_str(json) {
        Ok(k) => k,
        Err(e) => {
            let why = format!("cannot read object: {e}");
            report.push(Problem::error(Some(index), None, None, why));
            return None;
        }
    };
    let id = read_id(index, known.id, report)?;
    let mut fields = Fields::new(index, id, report);
    let parents = fields.parents(known.parents);
    let zone = fields.zone(known.zone);
    let name = fields.name(known.name);
    let criticality = fields.criticality(known.criticality);
    let enabled = fields.enabled(known.state);
    let frequency = fields.text(known.frequency, "Fréquence");
    let last_run = fields.text(known.last_run, "Lastrun");
    let zone = zone?;
    if !fields.usable {
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
