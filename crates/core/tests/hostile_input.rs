//! Input a careful, hostile user writes: values that are valid JSON syntax but name no id we can
//! hold are errors naming the object, index, field and text; never "no parent", never dropped.

use orchestrator_core::graph::{LoadOptions, Loaded, load_graph};
use orchestrator_core::{Problem, Severity};

fn load(text: &str) -> Loaded {
    load_graph(text, LoadOptions::default())
}

fn errors(l: &Loaded) -> Vec<&Problem> {
    l.report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
}

/// A raw object 1001, and 2001 whose parent field is `parent` (JSON text).
fn with_parent(parent: &str) -> String {
    format!(
        r#"[{{"IdObjet":1001,"Zone":"1-Raw"}},{{"IdObjet":2001,"Zone":"2-Standardized","IdObjet_Parent":{parent}}}]"#
    )
}

#[test]
fn an_unreadable_parent_is_an_error_naming_object_index_field_and_text() {
    let deep = format!("{}1001{}", "[".repeat(200), "]".repeat(200));
    for (parent, shown) in [
        (r#""1001\ud800""#, r"1001\ud800"),
        ("[1001, 1e400]", "1e400"),
        ("1e400", "1e400"),
        (deep.as_str(), "[[[["),
        (r#""1002.5""#, "1002.5"),
        (r#""-1002""#, "-1002"),
        (r#""1001,10x02""#, "10x02"),
        ("[1001, null]", "null"),
        ("-1001", "-1001"),
        ("1001.5", "1001.5"),
    ] {
        let l = load(&with_parent(parent));
        assert!(l.graph.is_none(), "{parent}: accepted");
        let errors = errors(&l);
        assert_eq!(errors.len(), 1, "{parent}: {errors:?}");
        let e = errors[0];
        assert_eq!(
            (e.index, e.id.map(|i| i.0), e.field),
            (Some(1), Some(2001), Some("IdObjet_Parent")),
            "{parent}: {e}"
        );
        assert!(e.message.contains(shown), "{parent}: {e}");
    }
}

#[test]
fn an_unreadable_id_says_why_not_missing() {
    for (id, shown) in [
        ("1e400", "number out of range"),
        (r#""10\udc00""#, "surrogate"),
        ("-5", "-5"),
        (r#""1001x""#, "1001x"),
    ] {
        let l = load(&format!(r#"[{{"IdObjet":{id},"Zone":"1-Raw"}}]"#));
        let errors = errors(&l);
        assert_eq!(errors.len(), 1, "{id}: {errors:?}");
        assert_eq!(errors[0].field, Some("IdObjet"));
        assert!(!errors[0].message.contains("missing"), "{}", errors[0]);
        assert!(errors[0].message.contains(shown), "{id}: {}", errors[0]);
    }
}

#[test]
fn other_fields_that_cannot_be_read_are_errors_too() {
    let l = load(r#"[{"IdObjet":1001,"Zone":"1-R\ud800aw"},{"IdObjet":1002,"NomObjet":"\udfff"}]"#);
    let fields: Vec<_> = errors(&l).iter().map(|p| (p.index, p.field)).collect();
    assert_eq!(
        fields,
        vec![(Some(0), Some("Zone")), (Some(1), Some("NomObjet"))]
    );
}

#[test]
fn a_noisy_token_with_one_run_of_digits_is_kept_with_a_warning() {
    let l = load(&with_parent(r#""id:1001""#));
    let graph = l.graph.unwrap_or_else(|| panic!("{:?}", l.report));
    assert_eq!(graph.edge_count(), 1);
    assert_eq!(l.report.warning_count(), 1);
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let l = load(&format!("\u{feff}{}", with_parent("1001")));
    let graph = l
        .graph
        .unwrap_or_else(|| panic!("{}", l.report.render(None)));
    assert_eq!(graph.edge_count(), 1);
}

#[test]
fn every_object_over_the_size_limit_is_listed() {
    let big = "x".repeat(2000);
    let text = format!(
        r#"[{{"IdObjet":1001,"Zone":"1-Raw","NomObjet":"{big}"}},{{"IdObjet":1002,"Zone":"1-Raw"}},{{"IdObjet":"bad","NomObjet":"{big}"}}]"#
    );
    let l = load_graph(
        text,
        LoadOptions {
            max_object_bytes: 1000,
            ..LoadOptions::default()
        },
    );
    assert!(l.graph.is_none());
    let sized: Vec<_> = errors(&l)
        .into_iter()
        .filter(|p| p.message.contains("more than the limit of 1000"))
        .map(|p| (p.index, p.id.map(|i| i.0)))
        .collect();
    assert_eq!(sized, vec![(Some(0), Some(1001)), (Some(2), None)]);
}
