//! Reads `IdObjet_Parent` as the old system's users wrote it: null, a number, `"1001,2002, 3003"`,
//! `"2001;2002"`, a list of numbers or strings, or noisy text such as `"garbage2003x"`.

use orchestrator_protocol::ObjectId;
use serde_json::Value;
use std::borrow::Cow;

/// What a parent field says, with the oddities found while reading it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ParsedParents {
    /// Distinct parents, in the order first named.
    pub ids: Vec<ObjectId>,
    /// Tokens that had other characters around their digits: (token, id kept).
    pub noisy: Vec<(String, ObjectId)>,
    /// Parents named more than once.
    pub repeated: Vec<ObjectId>,
    /// Tokens that cannot be an id (no digit, or too large), with the reason.
    pub invalid: Vec<String>,
}

/// Reads the value of `IdObjet_Parent`. `Err` means the value's type is wrong (an object, a bool…).
pub fn parse_parents(value: &Value) -> Result<ParsedParents, String> {
    let mut out = ParsedParents::default();
    match value {
        Value::Null => {}
        Value::Number(n) => push_number(&mut out, n),
        Value::String(s) => push_text(&mut out, s),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Number(n) => push_number(&mut out, n),
                    Value::String(s) => push_text(&mut out, s),
                    other => out.invalid.push(format!(
                        "list item {} is {}, expected a number or a string",
                        shorten(&other.to_string()),
                        type_name(other)
                    )),
                }
            }
        }
        other => {
            return Err(format!(
                "expected null, a number, a string or a list, got {}",
                type_name(other)
            ));
        }
    }
    Ok(dedup(out))
}

/// The JSON type of a value with its article, for messages ("a number", "an object").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads a parent field written as text (`"1001,2002; 3003"`).
pub fn parse_parent_text(s: &str) -> ParsedParents {
    let mut out = ParsedParents::default();
    push_text(&mut out, s);
    dedup(out)
}

/// Reads a parent field written as one number.
pub fn parse_parent_number(n: &serde_json::Number) -> ParsedParents {
    let mut out = ParsedParents::default();
    push_number(&mut out, n);
    out
}

fn push_number(out: &mut ParsedParents, n: &serde_json::Number) {
    match number_to_id(n) {
        Some(id) => push_id(out, id),
        None => out
            .invalid
            .push(format!("{n} is not a non-negative whole number")),
    }
}

/// A JSON number as an id: a non-negative integer (`1001` or `1001.0`).
pub fn number_to_id(n: &serde_json::Number) -> Option<ObjectId> {
    if let Some(u) = n.as_u64() {
        return Some(ObjectId(u));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Some(ObjectId(f as u64)),
        _ => None,
    }
}

fn push_text(out: &mut ParsedParents, s: &str) {
    for token in s.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
        if token.is_empty() {
            continue;
        }
        match token_id(token) {
            Ok(id) => {
                if !token.bytes().all(|b| b.is_ascii_digit()) {
                    out.noisy.push((token.to_string(), id));
                }
                push_id(out, id);
            }
            Err(why) => out.invalid.push(why),
        }
    }
}

/// The id a text token names. A token of digits is that number; a token with other characters
/// around its digits keeps them only when it holds exactly one run of digits and no sign or
/// decimal point (`"garbage2003x"`), since `"-1002"`, `"1002.5"` or `"10x02"` name no id that
/// could be told for sure.
fn token_id(token: &str) -> Result<ObjectId, String> {
    let shown = shorten(token);
    let runs = token
        .as_bytes()
        .split(|b| !b.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .count();
    if runs == 0 {
        return Err(format!("token {shown:?} has no digit"));
    }
    if runs > 1 {
        return Err(format!(
            "token {shown:?} holds {runs} separate runs of digits; write one id per token"
        ));
    }
    if let Some(c) = token.chars().find(|c| matches!(c, '-' | '+' | '.')) {
        let what = if c == '.' {
            "a decimal point"
        } else {
            "a sign"
        };
        return Err(format!(
            "token {shown:?} has {what}: an id is a non-negative whole number"
        ));
    }
    let digits: String = token.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse::<u64>()
        .map(ObjectId)
        .map_err(|_| format!("token {shown:?} is too large to be an id"))
}

/// A token as shown in a message: at most 80 characters.
pub fn shorten(text: &str) -> Cow<'_, str> {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

fn push_id(out: &mut ParsedParents, id: ObjectId) {
    out.ids.push(id);
}

/// Keeps the first naming of each parent and notes the repeats (linear in the number named).
fn dedup(mut out: ParsedParents) -> ParsedParents {
    if out.ids.len() < 2 {
        return out;
    }
    let mut seen = rustc_hash::FxHashSet::default();
    let mut repeated_seen = rustc_hash::FxHashSet::default();
    let mut repeated = Vec::new();
    out.ids.retain(|id| {
        if seen.insert(*id) {
            true
        } else {
            if repeated_seen.insert(*id) {
                repeated.push(*id);
            }
            false
        }
    });
    out.repeated = repeated;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(v: Value) -> Vec<u64> {
        parse_parents(&v)
            .map(|p| p.ids.iter().map(|i| i.0).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_shape_of_the_old_format() {
        assert_eq!(ids(json!(null)), Vec::<u64>::new());
        assert_eq!(ids(json!(1005)), vec![1005]);
        assert_eq!(ids(json!("1005")), vec![1005]);
        assert_eq!(ids(json!("1001,2002, 3003")), vec![1001, 2002, 3003]);
        assert_eq!(ids(json!("2001;2002")), vec![2001, 2002]);
        assert_eq!(ids(json!("2001 ; 2002\t2003")), vec![2001, 2002, 2003]);
        assert_eq!(
            ids(json!([1001, "2002", "2003,2004"])),
            vec![1001, 2002, 2003, 2004]
        );
        assert_eq!(ids(json!("")), Vec::<u64>::new());
    }

    #[test]
    fn noisy_tokens_keep_their_digits_with_a_note() {
        let p = parse_parents(&json!("garbage2003x, 2004")).unwrap_or_default();
        assert_eq!(p.ids, vec![ObjectId(2003), ObjectId(2004)]);
        assert_eq!(p.noisy, vec![("garbage2003x".to_string(), ObjectId(2003))]);
    }

    #[test]
    fn tokens_without_digits_are_invalid() {
        let p = parse_parents(&json!("2001,abc")).unwrap_or_default();
        assert_eq!(p.ids, vec![ObjectId(2001)]);
        assert_eq!(p.invalid.len(), 1);
        assert!(p.invalid[0].contains("abc"));
    }

    #[test]
    fn repeated_parents_count_once() {
        let p = parse_parents(&json!("2006,2001,2006, 2006")).unwrap_or_default();
        assert_eq!(p.ids, vec![ObjectId(2006), ObjectId(2001)]);
        assert_eq!(p.repeated, vec![ObjectId(2006)]);
    }

    #[test]
    fn tokens_that_name_no_sure_id_are_errors_not_digits() {
        for text in [
            "1002.5",
            "-1002",
            "+1002",
            "10x02",
            "1e3",
            "99999999999999999999999",
        ] {
            let p = parse_parents(&json!(text)).unwrap_or_default();
            assert!(p.ids.is_empty(), "{text}: read as {:?}", p.ids);
            assert_eq!(p.invalid.len(), 1, "{text}");
            assert!(p.invalid[0].contains(text), "{}", p.invalid[0]);
        }
        let p = parse_parents(&json!("x2003y;#2004")).unwrap_or_default();
        assert_eq!(p.ids, vec![ObjectId(2003), ObjectId(2004)]);
        assert!(p.invalid.is_empty());
    }

    #[test]
    fn null_in_a_list_is_an_error() {
        let p = parse_parents(&json!([1001, null])).unwrap_or_default();
        assert_eq!(p.ids, vec![ObjectId(1001)]);
        assert_eq!(p.invalid.len(), 1);
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(parse_parents(&json!({"a": 1})).is_err());
        assert!(parse_parents(&json!(true)).is_err());
        let p = parse_parents(&json!([-3, 1.5, true])).unwrap_or_default();
        assert_eq!(p.invalid.len(), 3);
    }
}
