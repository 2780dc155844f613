//! Reads an object file from disk within a size limit and loads it into a validated graph.

use orchestrator_core::graph::{LoadOptions, Loaded, load_graph};
use std::io::Read;
use std::path::Path;

/// Default for `--max-input-bytes`: 512 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: {size} bytes is more than --max-input-bytes ({limit}); raise the limit if the file is trusted"
    )]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: not UTF-8 text: {source}")]
    NotUtf8 {
        path: String,
        source: std::string::FromUtf8Error,
    },
}

/// Reads the whole file, refusing it before reading when it is larger than `limit` (and
/// stopping at the limit when its size cannot be known beforehand, as for a pipe).
pub fn read_limited(path: &Path, limit: u64) -> Result<String, InputError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| InputError::Io {
        path: name.clone(),
        source,
    })?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    if let Some(size) = size
        && size > limit
    {
        return Err(InputError::TooLarge {
            path: name,
            size,
            limit,
        });
    }
    // A regular file is read into a buffer of its size (growing one by doubling would hold up
    // to twice the file); one byte more, to see that it ends there.
    let mut buf = Vec::with_capacity(size.map_or(0, |s| s.saturating_add(1)) as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| InputError::Io {
            path: name.clone(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(InputError::TooLarge {
            path: name,
            size: buf.len() as u64,
            limit,
        });
    }
    String::from_utf8(buf).map_err(|source| InputError::NotUtf8 { path: name, source })
}

/// Reads and validates a file.
pub fn load_file(path: &Path, limit: u64, options: LoadOptions) -> Result<Loaded, InputError> {
    let text = read_limited(path, limit)?;
    Ok(load_graph(text, options))
}
