//! The three layers of the data platform, with the old system's names (`1-Raw`, …) and short
//! names (`raw`, …) accepted on input.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A layer of the platform. Ordered: raw < standardized < application.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Zone {
    #[serde(rename = "1-Raw")]
    Raw,
    #[serde(rename = "2-Standardized")]
    Standardized,
    #[serde(rename = "3-Application")]
    Application,
}

impl Zone {
    pub const ALL: [Zone; 3] = [Zone::Raw, Zone::Standardized, Zone::Application];

    /// The name the old system writes in `Zone` and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Raw => "1-Raw",
            Zone::Standardized => "2-Standardized",
            Zone::Application => "3-Application",
        }
    }

    /// A short lower-case name, for CLI flags, metric labels and topic suffixes.
    pub fn short(self) -> &'static str {
        match self {
            Zone::Raw => "raw",
            Zone::Standardized => "standardized",
            Zone::Application => "application",
        }
    }

    /// 0, 1, 2: for per-zone arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The zone the old numbering implies: 1000s raw, 2000s standardized, 3000s application.
    pub fn from_legacy_id(id: u64) -> Option<Zone> {
        match id {
            1000..=1999 => Some(Zone::Raw),
            2000..=2999 => Some(Zone::Standardized),
            3000..=3999 => Some(Zone::Application),
            _ => None,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown zone {0:?}: expected 1-Raw, 2-Standardized or 3-Application (or raw, standardized, application)"
)]
pub struct ParseZoneError(pub String);

/// Read from any name `FromStr` takes (`1-Raw`, `raw`, `ingestion`, `1`, any case); written as
/// `1-Raw`, `2-Standardized`, `3-Application`.
impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Zone;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a zone: 1-Raw, 2-Standardized or 3-Application")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Zone, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

impl FromStr for Zone {
    type Err = ParseZoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        match lower.as_str() {
            "1-raw" | "raw" | "1" | "ingestion" => Ok(Zone::Raw),
            "2-standardized" | "standardized" | "2" | "standardization" => Ok(Zone::Standardized),
            "3-application" | "application" | "3" => Ok(Zone::Application),
            _ => Err(ParseZoneError(t.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_names_and_round_trips() {
        for z in Zone::ALL {
            assert_eq!(z.as_str().parse::<Zone>(), Ok(z));
            assert_eq!(z.short().parse::<Zone>(), Ok(z));
            let json = serde_json::to_string(&z).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", z.as_str()));
        }
        assert!("4-Gold".parse::<Zone>().is_err());
        let read = |j: &str| serde_json::from_str::<Zone>(j).ok();
        assert_eq!(read("\"2-Standardized\""), Some(Zone::Standardized));
        assert_eq!(read("\"RAW\""), Some(Zone::Raw));
        assert_eq!(read("\"4-Gold\""), None);
    }

    #[test]
    fn legacy_numbering() {
        assert_eq!(Zone::from_legacy_id(1005), Some(Zone::Raw));
        assert_eq!(Zone::from_legacy_id(2999), Some(Zone::Standardized));
        assert_eq!(Zone::from_legacy_id(3000), Some(Zone::Application));
        assert_eq!(Zone::from_legacy_id(42), None);
    }
}
