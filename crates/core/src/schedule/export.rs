//! The catalog exported with each object's `Lastrun` brought up to its latest load, every other
//! field as written and in its order, so that the file can seed another orchestrator (or the
//! old system) with what has loaded since.

use crate::graph::Graph;
use chrono::{DateTime, SecondsFormat};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An object's fields in the order written.
struct OrderedFields(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(pair) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push(pair);
                }
                Ok(OrderedFields(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// The objects of `graph` as a JSON array, one object per line; where `last_run[i]` is given,
/// object `i`'s `Lastrun` (Unix ms) becomes that time in ISO 8601 (UTC), added if missing.
pub fn export_with_last_runs(graph: &Graph, last_run: &[Option<u64>]) -> Result<String, String> {
    let mut out = String::from("[\n");
    for (i, o) in graph.objects.iter().enumerate() {
        if i > 0 {
            out.push_str(",\n");
        }
        let Some(ms) = last_run.get(i).copied().flatten() else {
            out.push_str(o.raw.get().trim());
            continue;
        };
        let time = DateTime::from_timestamp_millis(ms as i64)
            .ok_or_else(|| format!("object {}: {ms} ms is not a time", o.id))?
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        let value = serde_json::to_string(&time).map_err(|e| e.to_string())?;
        let mut fields: OrderedFields =
            serde_json::from_str(o.raw.get()).map_err(|e| format!("object {}: {e}", o.id))?;
        match fields.0.iter_mut().find(|(k, _)| k == "Lastrun") {
            Some((_, v)) => *v = RawValue::from_string(value).map_err(|e| e.to_string())?,
            None => fields.0.push((
                "Lastrun".to_string(),
                RawValue::from_string(value).map_err(|e| e.to_string())?,
            )),
        }
        out.push('{');
        for (n, (k, v)) in fields.0.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).map_err(|e| e.to_string())?);
            out.push(':');
            out.push_str(v.get());
        }
        out.push('}');
    }
    out.push_str("\n]\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LoadOptions, load_graph};

    #[test]
    fn lastrun_is_replaced_or_added_and_every_other_field_kept_in_order() {
        let text = r#"[{"IdObjet":1001,"Lastrun":null,"Zone":"1-Raw","Format":"csv"},
            {"IdObjet":1002,"Zone":"1-Raw"},{"IdObjet":1003,"Lastrun":"2026-01-01"}]"#;
        let g = load_graph(text.to_string(), LoadOptions::default())
            .graph
            .unwrap_or_else(|| panic!("valid"));
        let at = 1_796_025_600_000; // 2026-11-30T08:00:00Z
        let out = export_with_last_runs(&g, &[Some(at), Some(at), None])
            .unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            r#"{"IdObjet":1001,"Lastrun":"2026-11-30T08:00:00Z","Zone":"1-Raw","Format":"csv"},"#
        );
        assert_eq!(
            lines[2],
            r#"{"IdObjet":1002,"Zone":"1-Raw","Lastrun":"2026-11-30T08:00:00Z"},"#
        );
        assert_eq!(lines[3], r#"{"IdObjet":1003,"Lastrun":"2026-01-01"}"#);
        // It reads back as the same graph.
        let again = load_graph(out, LoadOptions::default());
        assert_eq!(again.graph.map(|g| g.len()), Some(3));
    }
}
