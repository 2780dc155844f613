//! `RawJson`: an object's JSON exactly as the user wrote it, kept as a slice of the file's text
//! shared by every object, so a million objects cost no copy. Serialized as the raw JSON itself.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

#[derive(Clone)]
pub struct RawJson {
    text: Arc<String>,
    start: usize,
    end: usize,
}

impl RawJson {
    /// The part `range` of a shared text; `None` when the range is not inside it.
    pub fn slice(text: Arc<String>, range: Range<usize>) -> Option<RawJson> {
        text.get(range.clone())?;
        Some(RawJson {
            text,
            start: range.start,
            end: range.end,
        })
    }

    /// A text of its own.
    pub fn from_string(s: String) -> RawJson {
        let end = s.len();
        RawJson {
            text: Arc::new(s),
            start: 0,
            end,
        }
    }

    pub fn get(&self) -> &str {
        self.text.get(self.start..self.end).unwrap_or_default()
    }

    /// The shared text and where in it this one is.
    pub fn parts(&self) -> (&Arc<String>, Range<usize>) {
        (&self.text, self.start..self.end)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer).map_err(D::Error::custom)?;
        Ok(RawJson::from_string(raw.get().to_string()))
    }
}
