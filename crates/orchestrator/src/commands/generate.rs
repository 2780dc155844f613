//! `orchestrator generate --objects N`: a seeded layered graph in the old format.

use crate::EXIT_OK;
use anyhow::Context;
use orchestrator::cli::GenerateArgs;
use orchestrator_core::generate::{GenerateOptions, generate as write_graph};
use std::io::{BufWriter, Write};

pub fn generate(args: GenerateArgs) -> anyhow::Result<i32> {
    let options = GenerateOptions {
        objects: args.objects,
        seed: args.seed,
        max_parents: args.max_parents,
        full: args.full,
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::new(file);
            write_graph(options, &mut w)
                .and_then(|_| w.flush())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            write_graph(options, &mut w)
                .and_then(|_| w.flush())
                .context("writing to stdout")?;
        }
    }
    Ok(EXIT_OK)
}
