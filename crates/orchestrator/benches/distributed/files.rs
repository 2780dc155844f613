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

/// The layered graph users run (W2 at 10,000 objects): a tenth raw, three tenths standardized,
/// six tenths application, each non-raw object with 1 to 3 parents in the layer below, drawn
/// with a fixed seed.
pub(crate) fn layered(dir: &Path, n: usize) -> PathBuf {
    let sizes = [n / 10, n * 3 / 10, n - n / 10 - n * 3 / 10];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        // xorshift64*: enough to spread parents, the same graph every time.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
    };
    let mut objects = Vec::with_capacity(n);
    for (layer, &size) in sizes.iter().enumerate() {
        let zone = ["1-Raw", "2-Standardized", "3-Application"][layer];
        let base = (layer as u64 + 1) * 1_000_000;
        for i in 0..size {
            let parents: Vec<u64> = if layer == 0 {
                Vec::new()
            } else {
                let below = sizes[layer - 1];
                let mut p: Vec<u64> = (0..1 + next(3))
                    .map(|_| layer as u64 * 1_000_000 + next(below) as u64)
                    .collect();
                p.sort_unstable();
                p.dedup();
                p
            };
            objects.push(serde_json::json!({
                "IdObjet": base + i as u64,
                "NomObjet": format!("{zone} {i}"),
                "Zone": zone,
                "IdObjet_Parent": parents,
            }));
        }
    }
    let file = dir.join(format!("layered-{n}.json"));
    std::fs::write(&file, serde_json::to_string(&objects).unwrap()).unwrap();
    file
}
