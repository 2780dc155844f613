//! The committed console bundle is built from the committed sources: its stamp (written by
//! `crates/http/console/build.mjs`) is the fingerprint of `src/*.ts`, so a change to the sources
//! without `npm run build` fails here, in CI, which has no Node.js.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sha2::{Digest, Sha256};
use std::path::Path;

#[test]
fn the_bundle_is_built_from_the_sources() {
    let console = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut files: Vec<String> = std::fs::read_dir(console.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".ts"))
        .collect();
    files.sort();
    assert!(files.contains(&"main.ts".to_string()), "{files:?}");
    let mut hash = Sha256::new();
    for f in &files {
        let text = std::fs::read_to_string(console.join("src").join(f)).unwrap();
        hash.update(format!("{f}\n{text}\n").as_bytes());
    }
    let sources: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let bundle = std::fs::read_to_string(console.join("dist/console.js")).unwrap();
    let stamp = bundle.lines().next().unwrap_or_default();
    assert_eq!(
        stamp,
        format!("// orchestrator console; sources sha256 {sources}"),
        "dist/console.js is not built from src/: run `npm ci && npm run build` in crates/http/console"
    );
}
