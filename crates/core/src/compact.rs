//! Object definitions as compact JSON, for storing a run's graph: every object as written, minus
//! the whitespace between tokens, so that what a store keeps is bounded by the objects and never
//! by padding in the body they came in.

use crate::graph::Graph;
use orchestrator_protocol::RawJson;
use std::ops::Range;
use std::sync::Arc;

/// Where a scan of valid JSON text is: in a string (after a backslash) or between tokens.
#[derive(Default)]
struct Tokens {
    in_string: bool,
    escaped: bool,
}

impl Tokens {
    /// Takes the next byte: whether it is whitespace outside any string.
    fn is_space_between_tokens(&mut self, b: u8) -> bool {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            false
        } else if b == b'"' {
            self.in_string = true;
            false
        } else {
            matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        }
    }
}

/// Appends `json` (valid JSON text) to `out` without the whitespace outside its strings.
pub fn push_compact(json: &str, out: &mut String) {
    let mut scan = Tokens::default();
    let mut kept_from = 0;
    for (i, b) in json.bytes().enumerate() {
        if scan.is_space_between_tokens(b) {
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
        // The text read is compacted where it is when the graph alone holds it: a 1,000,000-object
        // submission then never holds the text and its compact copy at once (about 100 MB).
        let (text, ranges) = match self.take_text() {
            Some((text, ranges)) => compact_in_place(text, &ranges),
            None => self.compact_with_ranges(),
        };
        let text = Arc::new(text);
        self.point_into(&text, ranges);
        text
    }

    fn point_into(&mut self, text: &Arc<String>, ranges: Vec<Range<usize>>) {
        for (o, range) in self.objects.iter_mut().zip(ranges) {
            if let Some(raw) = RawJson::slice(text.clone(), range) {
                o.raw = raw;
            }
        }
    }

    /// The one text every object's JSON is a slice of, taken from the objects (which point at an
    /// empty text until rebased), with their places in it; `None` (nothing taken) unless they all
    /// share it, alone, in order, with a byte before each, between each and after the last (the
    /// array's `[`, commas and `]`: what compacting in place writes).
    fn take_text(&mut self) -> Option<(String, Vec<Range<usize>>)> {
        let text = self.objects.first()?.raw.parts().0.clone();
        let mut ranges = Vec::with_capacity(self.objects.len());
        let mut floor = 1;
        for o in &self.objects {
            let (shared, range) = o.raw.parts();
            if !Arc::ptr_eq(shared, &text) || range.start < floor {
                return None;
            }
            floor = range.end + 1;
            ranges.push(range);
        }
        if floor > text.len() {
            return None;
        }
        let empty = RawJson::from_string(String::new());
        for o in &mut self.objects {
            o.raw = empty.clone();
        }
        match Arc::try_unwrap(text) {
            Ok(text) => Some((text, ranges)),
            Err(text) => {
                self.point_into(&text, ranges);
                None
            }
        }
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

/// `text` with the objects at `ranges` written as one compact JSON array from its start, in
/// its own buffer (see [`Graph::take_text`] for what `ranges` must be), and their new places.
/// Writing never overtakes reading: each object's compact form is no longer than it was, and the
/// byte before, between or after them that the array's punctuation takes is there.
fn compact_in_place(text: String, ranges: &[Range<usize>]) -> (String, Vec<Range<usize>>) {
    if ranges.is_empty() {
        return ("[]".to_string(), Vec::new());
    }
    let mut bytes = text.into_bytes();
    let mut placed = Vec::with_capacity(ranges.len());
    let mut w = 0;
    for (i, range) in ranges.iter().enumerate() {
        bytes[w] = if i == 0 { b'[' } else { b',' };
        w += 1;
        let start = w;
        let mut scan = Tokens::default();
        let mut kept_from = range.start;
        for k in range.clone() {
            if scan.is_space_between_tokens(bytes[k]) {
                bytes.copy_within(kept_from..k, w);
                w += k - kept_from;
                kept_from = k + 1;
            }
        }
        bytes.copy_within(kept_from..range.end, w);
        w += range.end - kept_from;
        placed.push(start..w);
    }
    bytes[w] = b']';
    bytes.truncate(w + 1);
    bytes.shrink_to_fit();
    // Only ASCII whitespace between tokens went: still UTF-8.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (text, placed)
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

    #[test]
    fn compacting_in_place_writes_what_a_copy_would() {
        let texts = [
            "[{\"IdObjet\":1001}]".to_string(),
            "\u{feff}[\n  { \"IdObjet\" : 1001 , \"NomObjet\" : \"é \\\" x\" } ,\n\t{ \"IdObjet\": 1002, \"Note\": \"\\\\\" , \"V\" : [ 1 , { \"a\" : \" \" } ] }\r\n]  ".to_string(),
            // No whitespace anywhere: each write lands one byte behind the read.
            "[{\"IdObjet\":1001},{\"IdObjet\":2001,\"IdObjet_Parent\":\"1001;1002\"},{\"IdObjet\":1002,\"EtatObjet\":\"inactif\"}]".to_string(),
        ];
        for text in texts {
            let read = |text: &str| {
                let loaded = load_graph(text.to_string(), LoadOptions::default());
                loaded
                    .graph
                    .unwrap_or_else(|| panic!("{:?}", loaded.report))
            };
            let mut graph = read(&text);
            let copied = graph.compact_with_ranges().0;
            let (taken, ranges) = graph
                .take_text()
                .unwrap_or_else(|| panic!("a graph just read holds its text alone: {text}"));
            let (in_place, placed) = compact_in_place(taken, &ranges);
            assert_eq!(in_place, copied, "{text}");
            let mut graph = read(&text);
            let stored = graph.rebase_on_compact();
            assert_eq!(*stored, copied);
            for (o, range) in graph.objects.iter().zip(placed) {
                assert_eq!(o.raw.get(), &copied[range]);
                assert!(Arc::ptr_eq(o.raw.parts().0, &stored));
            }
        }
    }

    #[test]
    fn a_text_held_elsewhere_is_copied_and_left_as_it_was() {
        let loaded = load_graph(
            "[ {\"IdObjet\": 1001} , {\"IdObjet\": 1002} ]".to_string(),
            LoadOptions::default(),
        );
        let mut graph = loaded
            .graph
            .unwrap_or_else(|| panic!("{:?}", loaded.report));
        let held = graph.objects[0].raw.clone();
        let stored = graph.rebase_on_compact();
        assert_eq!(*stored, r#"[{"IdObjet":1001},{"IdObjet":1002}]"#);
        assert_eq!(held.get(), "{\"IdObjet\": 1001}");
        assert_eq!(graph.objects[1].raw.get(), r#"{"IdObjet":1002}"#);
    }

    proptest::proptest! {
        #[test]
        fn any_spacing_compacts_in_place_as_a_copy_would(
            spaces in proptest::collection::vec(proptest::sample::select(vec!["", " ", "\n", " \t\r\n "]), 40),
            names in proptest::collection::vec("[a-z \"\\\\é]{0,6}", 4),
        ) {
            let sp = |i: usize| spaces[i % spaces.len()];
            let mut text = format!("{}[", sp(0));
            for (i, name) in names.iter().enumerate() {
                let name = serde_json::to_string(name).unwrap_or_default();
                if i > 0 {
                    text.push_str(&format!("{},{}", sp(i * 7 + 1), sp(i * 7 + 2)));
                }
                text.push_str(&format!(
                    "{{{}\"IdObjet\"{}:{}{}{},\"NomObjet\":{}{}{}}}",
                    sp(i * 7 + 3), sp(i * 7 + 4), sp(i * 7 + 5), 1001 + i, sp(i * 7 + 6), sp(i), name, sp(i * 7 + 7)
                ));
            }
            text.push_str(&format!("{}]{}", sp(39), sp(38)));
            let loaded = load_graph(text.clone(), LoadOptions::default());
            let Some(mut graph) = loaded.graph else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("{text}: {:?}", loaded.report)));
            };
            let copied = graph.compact_with_ranges().0;
            let stored = graph.rebase_on_compact();
            proptest::prop_assert_eq!(&*stored, &copied);
            let again = load_graph(copied, LoadOptions::default());
            proptest::prop_assert_eq!(again.graph.map(|g| g.len()), Some(names.len()));
        }
    }
}
