//! Identifiers: an object's id (`IdObjet`, a number) and a run's id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// An object's `IdObjet`. Written as a number; read from a number or a string of digits (as
/// some of the old system's workers echo it).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjectId(pub u64);

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Id;
        impl serde::de::Visitor<'_> for Id {
            type Value = ObjectId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object id: a whole number, or a string of digits")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ObjectId, E> {
                Ok(ObjectId(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ObjectId, E> {
                u64::try_from(v)
                    .map(ObjectId)
                    .map_err(|_| E::custom(format!("object id {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ObjectId, E> {
                v.trim()
                    .parse()
                    .map(ObjectId)
                    .map_err(|_| E::custom(format!("object id {v:?} is not a whole number")))
            }
        }
        d.deserialize_any(Id)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A run's id: cheap to clone, printed as is. Compared by its text; the copies of one id share
/// their text, so comparing two of them (every object a run stores, every result it takes) is
/// a pointer comparison.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
#[derive(Clone, Debug, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub Arc<str>);

/// By its text, as equality.
impl std::hash::Hash for RunId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for RunId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for RunId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl PartialOrd for RunId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl RunId {
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        RunId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_compare_by_their_text_whether_they_share_it_or_not() {
        let a = RunId::new("run-20261207-1");
        let shared = a.clone();
        let copy = RunId::new(String::from("run-20261207-1"));
        let other = RunId::new("run-20261207-2");
        assert_eq!(a, shared);
        assert_eq!(a, copy);
        assert_ne!(a, other);
        assert_eq!(a.cmp(&copy), std::cmp::Ordering::Equal);
        assert_eq!(a.cmp(&other), std::cmp::Ordering::Less);
        assert_eq!(other.cmp(&shared), std::cmp::Ordering::Greater);
    }

    #[test]
    fn an_object_id_is_read_from_a_number_or_a_string_of_digits() {
        let read = |j: &str| serde_json::from_str::<ObjectId>(j).map_err(|e| e.to_string());
        assert_eq!(read("1001"), Ok(ObjectId(1001)));
        assert_eq!(read("\" 1001\""), Ok(ObjectId(1001)));
        assert!(read("-3").is_err_and(|e| e.contains("negative")));
        assert!(read("\"oops\"").is_err_and(|e| e.contains("not a whole number")));
        assert!(read("1.5").is_err());
        assert_eq!(serde_json::to_string(&ObjectId(7)).unwrap_or_default(), "7");
    }
}
