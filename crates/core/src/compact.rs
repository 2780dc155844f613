//! Object definitions as compact JSON, for storing a run's graph: every object as written, minus
//! the whitespace between tokens, so that what a store keeps is bounded by the objects and never
//! by padding in the body they came in.

use crate::graph::Graph;
use orchestrator_protocol::RawJson;
use std::ops::Range;
use std::sync::Arc;

/// Appends `json` (valid JSON text) to `out` without the whitespace outside its strings.
pub fn push_compact(json: &str, out: &mut String) {
    let mut in_string = false;
    let mut escaped = false;
    let mut kept_from = 0;
    for (i, b) in json.bytes().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            // Whitespace is ASCII, so `i` is a character boundary.
            out.push_str(&json[kept_from..i]);
            kept_from = i + 1;
        }
    }
    out.push_str(&json[kept_from..]);
}

impl Graph {
    /// Makes the compact JSON of the objects (one JSON array, in file order, that reads back as the same graph) and points every
    /// object's raw JSON into it: the text the graph was read from (padding and all) is no
    /// longer held, and the compact text serves both the store and the Ready events.
    pub fn rebase_on_compact(&mut self) -> Arc<String> {
        let (text, ranges) = self.compact_with_ranges();
        let text = Arc::new(text);
        for (o, range) in self.objects.iter_mut().zip(ranges) {
            if let Some(raw) = RawJson::slice(text.clone(), range) {
                o.raw = raw;
            }
        }
        text
    }

    fn compact_with_ranges(&self) -> (String, Vec<Range<usize>>) {
        let size: usize = self.objects.iter().map(|o| o.raw.get().len() + 1).sum();
        let mut out = String::with_capacity(size + 2);
        let mut ranges = Vec::with_capacity(self.objects.len());
        out.push('[');
        for (i, o) in self.objects.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let start = out.len();
            push_compact(o.raw.get(), &mut out);
            ranges.push(start..out.len());
        }
        out.push(']');
        (out, ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{LoadOptions, load_graph};

    fn compact(json: &str) -> String {
        let mut out = String::new();
        push_compact(json, &mut out);
        out
    }

    #[test]
    fn whitespace_goes_strings_stay() {
        assert_eq!(
            compact(" { \"a b\" : [ 1 ,\n\t2 ] , \"c\\\" d\" : \" x \\\\\" } "),
            "{\"a b\":[1,2],\"c\\\" d\":\" x \\\\\"}"
        );
    }

    #[test]
    fn a_padded_file_is_stored_as_its_objects() {
        let padding = " ".repeat(10_000);
        let text = format!(
            "{padding}[ {{ \"IdObjet\" : 1001 , \"Zone\" : \"1-Raw\" , \"NomObjet\": \"a  b\" }} ,\n {{\"IdObjet\":2001,\"IdObjet_Parent\":\"1001\",\"Zone\":\"2-Standardized\"}} ]{padding}"
        );
        let loaded = load_graph(text, LoadOptions::default());
        let mut graph = loaded
            .graph
            .unwrap_or_else(|| panic!("{:?}", loaded.report));
        let stored = graph.rebase_on_compact().to_string();
        assert_eq!(
            stored,
            r#"[{"IdObjet":1001,"Zone":"1-Raw","NomObjet":"a  b"},{"IdObjet":2001,"IdObjet_Parent":"1001","Zone":"2-Standardized"}]"#
        );
        let again = load_graph(stored, LoadOptions::default());
        assert_eq!(again.graph.map(|g| g.edge_count()), Some(1));
    }
}
