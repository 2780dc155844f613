//! One object of a run and its attempts, printed the same by `runs logs` (from the API) and
//! `status --object` (from a store): its state, what blocks it, then each attempt with its
//! worker, times, outcome, reason and output.

use serde_json::Value;

/// Unix milliseconds as an RFC 3339 time (UTC), or `-` for none.
fn time(ms: &Value) -> String {
    match ms.as_i64().filter(|&ms| ms > 0) {
        Some(ms) => chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| ms.to_string()),
        None => "-".to_string(),
    }
}

/// Prints `detail` (an object as `GET /api/runs/{id}/objects/{oid}` gives it) and, for each
/// attempt (or only `only`), its output as `output` gives it.
pub fn print_object(
    detail: &Value,
    only: Option<u32>,
    mut output: impl FnMut(u32) -> Result<String, String>,
) {
    outln!(
        "object {} ({}) of run {}: {}, attempt {}, zone {}",
        detail["id"],
        detail["name"].as_str().unwrap_or_default(),
        detail["run_id"].as_str().unwrap_or_default(),
        detail["state"].as_str().unwrap_or_default(),
        detail["attempt"],
        detail["zone"].as_str().unwrap_or_default(),
    );
    if let Some(blocker) = detail["blocked_by"].as_u64() {
        outln!("blocked by: object {blocker} failed");
    }
    let attempts = detail["attempts"].as_array().cloned().unwrap_or_default();
    if attempts.is_empty() {
        outln!("(no ended attempt)");
    }
    for a in attempts {
        let n = a["attempt"].as_u64().unwrap_or_default() as u32;
        if only.is_some_and(|o| o != n) {
            continue;
        }
        let worker = a["worker"].as_str().unwrap_or("-");
        let simulated = if a["simulated"] == true {
            " (simulated: no data)"
        } else {
            ""
        };
        outln!(
            "--- attempt {n}: {}{simulated} on {worker}, dispatched {}, started {}, ended {} ({} ms)",
            a["outcome"].as_str().unwrap_or_default(),
            time(&a["dispatched_ms"]),
            time(&a["started_ms"]),
            time(&a["ended_ms"]),
            a["duration_ms"],
        );
        for (label, field) in [("reason", "reason"), ("info", "info")] {
            if let Some(text) = a[field].as_str().filter(|t| !t.is_empty()) {
                outln!("{label}: {text}");
            }
        }
        if a["output_bytes"].as_u64().unwrap_or_default() == 0 {
            outln!("(no output)");
            continue;
        }
        match output(n) {
            Ok(text) => {
                out!("{text}");
                if !text.ends_with('\n') {
                    outln!();
                }
            }
            Err(why) => outln!("(output cannot be read: {why})"),
        }
    }
}
