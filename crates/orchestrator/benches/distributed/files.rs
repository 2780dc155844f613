//! The object files the bench runs: generated graphs and a chain.

use crate::bin;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn generated(dir: &Path, n: usize) -> PathBuf {
    let file = dir.join(format!("objects-{n}.json"));
    let ok = Command::new(bin("orchestrator"))
        .args(["generate", "--objects", &n.to_string(), "--seed", "1", "-o"])
        .arg(&file)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    file
}

/// A chain of `n` objects: each one's parent is the previous (raw, then standardized, then
/// application, a third each).
pub(crate) fn chain(dir: &Path, n: usize) -> (PathBuf, Vec<u64>) {
    let ids: Vec<u64> = (0..n)
        .map(|i| match i * 3 / n {
            0 => 1_000_000 + i as u64,
            1 => 2_000_000 + i as u64,
            _ => 3_000_000 + i as u64,
        })
        .collect();
    let objects: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let zone = ["1-Raw", "2-Standardized", "3-Application"][i * 3 / n];
            serde_json::json!({
                "IdObjet": id,
                "NomObjet": format!("link {i}"),
                "Zone": zone,
                "IdObjet_Parent": if i == 0 { serde_json::Value::Null } else { serde_json::json!(ids[i - 1]) },
            })
        })
        .collect();
    let file = dir.join("chain.json");
    std::fs::write(&file, serde_json::to_string(&objects).unwrap()).unwrap();
    (file, ids)
}
