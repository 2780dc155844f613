//! Reading an object's fields one by one: each reader reports what is wrong with its field
//! (naming the object's index, id and the field) and says whether the object is still usable.

use crate::diagnostics::{Problem, Report};
use crate::objects::Criticality;
use crate::parents::{
    ParsedParents, number_to_id, parse_parent_number, parse_parent_text, parse_parents, shorten,
    type_name,
};
use orchestrator_protocol::{ObjectId, Zone};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The fields the orchestrator reads; every other field stays in `raw`.
#[derive(Deserialize)]
pub(crate) struct KnownFields<'a> {
    #[serde(rename = "IdObjet", borrow, default)]
    pub(crate) id: Option<&'a RawValue>,
    #[serde(rename = "IdObjet_Parent", borrow, default)]
    pub(crate) parents: Option<&'a RawValue>,
    #[serde(rename = "Zone", borrow, default)]
    pub(crate) zone: Option<&'a RawValue>,
    #[serde(rename = "NomObjet", borrow, default)]
    pub(crate) name: Option<&'a RawValue>,
    #[serde(rename = "Criticité", borrow, default)]
    pub(crate) criticality: Option<&'a RawValue>,
    #[serde(rename = "EtatObjet", borrow, default)]
    pub(crate) state: Option<&'a RawValue>,
    #[serde(rename = "Fréquence", borrow, default)]
    pub(crate) frequency: Option<&'a RawValue>,
    #[serde(rename = "Lastrun", borrow, default)]
    pub(crate) last_run: Option<&'a RawValue>,
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

/// `IdObjet`: a whole number, or a string of one; anything else makes the object unusable.
pub(crate) fn read_id(
    index: usize,
    raw: Option<&RawValue>,
    report: &mut Report,
) -> Option<ObjectId> {
    let why = match scalar(raw) {
        Scalar::Num(n) => match number_to_id(&n) {
            Some(id) => return Some(id),
            None => format!("{n} is not a non-negative whole number"),
        },
        Scalar::Str(s) => match s.trim().parse::<u64>() {
            Ok(n) => return Some(ObjectId(n)),
            Err(_) => format!("{:?} is not a numeric id", shorten(&s)),
        },
        Scalar::Null => "missing: every object needs an id".to_string(),
        other => other.wrong("a number or a numeric string"),
    };
    report.push(Problem::error(Some(index), None, Some("IdObjet"), why));
    None
}

/// The reader of one object's other fields.
pub(crate) struct Fields<'r> {
    index: usize,
    id: ObjectId,
    report: &'r mut Report,
    /// False once a field makes the object unusable.
    pub(crate) usable: bool,
}

impl<'r> Fields<'r> {
    pub(crate) fn new(index: usize, id: ObjectId, report: &'r mut Report) -> Self {
        Fields {
            index,
            id,
            report,
            usable: true,
        }
    }

    fn error(&mut self, field: &'static str, msg: String) {
        let p = Problem::error(Some(self.index), Some(self.id), Some(field), msg);
        self.report.push(p);
        self.usable = false;
    }

    fn warn(&mut self, field: &'static str, msg: String) {
        let p = Problem::warning(Some(self.index), Some(self.id), Some(field), msg);
        self.report.push(p);
    }

    /// `IdObjet_Parent` in any of its shapes (null, a number, a separated string, a list).
    pub(crate) fn parents(&mut self, raw: Option<&RawValue>) -> Box<[ObjectId]> {
        let parsed = match scalar(raw) {
            Scalar::Null => Ok(ParsedParents::default()),
            Scalar::Str(s) => Ok(parse_parent_text(&s)),
            Scalar::Num(n) => Ok(parse_parent_number(&n)),
            Scalar::Other(v) => parse_parents(&v),
            Scalar::Unreadable(why) => Err(why),
        };
        let p = match parsed {
            Ok(p) => p,
            Err(msg) => {
                self.error("IdObjet_Parent", msg);
                return Box::default();
            }
        };
        for (token, kept) in &p.noisy {
            let msg = format!(
                "token {token:?} has other characters around its digits; read as parent {kept}"
            );
            self.warn("IdObjet_Parent", msg);
        }
        for rep in &p.repeated {
            let msg = format!("parent {rep} is named more than once; counted once");
            self.warn("IdObjet_Parent", msg);
        }
        for bad in &p.invalid {
            self.error("IdObjet_Parent", bad.clone());
        }
        p.ids.into_boxed_slice()
    }

    /// `Zone`, or the zone the id's numbering implies when it is missing.
    pub(crate) fn zone(&mut self, raw: Option<&RawValue>) -> Option<Zone> {
        let legacy = Zone::from_legacy_id(self.id.0);
        match scalar(raw) {
            Scalar::Str(s) => match s.parse::<Zone>() {
                Ok(z) => {
                    if let Some(l) = legacy.filter(|l| *l != z) {
                        let msg = format!("zone {z} contradicts the numbering, which implies {l}");
                        self.warn("Zone", msg);
                    }
                    Some(z)
                }
                Err(e) => {
                    self.error("Zone", e.to_string());
                    None
                }
            },
            Scalar::Null => match legacy {
                Some(z) => {
                    self.warn("Zone", format!("missing; {z} derived from the numbering"));
                    Some(z)
                }
                None => {
                    let msg = "missing, and the id is outside the 1000-3999 numbering that would imply one";
                    self.error("Zone", msg.to_string());
                    None
                }
            },
            other => {
                self.error("Zone", other.wrong("a string"));
                None
            }
        }
    }

    /// `NomObjet`, the id when missing.
    pub(crate) fn name(&mut self, raw: Option<&RawValue>) -> String {
        match scalar(raw) {
            Scalar::Str(s) => s.into_owned(),
            Scalar::Null => self.id.to_string(),
            other => {
                self.error("NomObjet", other.wrong("a string"));
                String::new()
            }
        }
    }

    /// `Criticité`, English or French; anything else is the default, with a warning.
    pub(crate) fn criticality(&mut self, raw: Option<&RawValue>) -> Criticality {
        let default = Criticality::default();
        match scalar(raw) {
            Scalar::Null => default,
            Scalar::Str(s) => Criticality::parse(&s).unwrap_or_else(|| {
                let msg = format!("unknown value {s:?}; using {}", default.as_str());
                self.warn("Criticité", msg);
                default
            }),
            other => {
                let msg = format!("{}; using {}", other.wrong("a string"), default.as_str());
                self.warn("Criticité", msg);
                default
            }
        }
    }

    /// `EtatObjet`: enabled unless present and not `actif`.
    pub(crate) fn enabled(&mut self, raw: Option<&RawValue>) -> bool {
        match scalar(raw) {
            Scalar::Null => true,
            Scalar::Str(s) => s.trim().eq_ignore_ascii_case("actif"),
            other => {
                self.error("EtatObjet", other.wrong("a string"));
                true
            }
        }
    }

    /// A field kept as text (`Fréquence`, `Lastrun`); a number is kept as written.
    pub(crate) fn text(&mut self, raw: Option<&RawValue>, field: &'static str) -> Option<Box<str>> {
        match scalar(raw) {
            Scalar::Null => None,
            Scalar::Str(s) => Some(Box::from(s.as_ref())),
            Scalar::Num(n) => Some(n.to_string().into_boxed_str()),
            other => {
                self.error(field, other.wrong("a string"));
                None
            }
        }
    }
}
