//! The configuration-file layer shared by every binary: `--config FILE` (TOML, YAML or JSON, read
//! with the `config` crate) supplies option values below the environment and the command line
//! and above the built-in defaults. Keys are the env names (`KAFKA_BOOTSTRAP`) or option names
//! (`kafka-bootstrap`, `kafka_bootstrap`), in any case.

use clap::Command;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The env variable that names a config file when `--config` is not given.
pub const CONFIG_ENV: &str = "ORCH_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "config file {path}: unknown setting {key:?} (settings are the env names shown by --help)"
    )]
    Unknown { path: PathBuf, key: String },
    #[error("config file {path}: setting {key:?}: {reason}")]
    Value {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// The file `--config FILE`, `--config=FILE` or `ORCH_CONFIG` names, if any.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Normalizes a key: `KAFKA_BOOTSTRAP`, `kafka-bootstrap` and `kafka_bootstrap` are one.
fn normal(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Reads the file's settings as strings (lists joined with commas, tables as `k=v` lists).
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, ConfigFileError> {
    let read_err = |reason: String| ConfigFileError::Read {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_file() {
        return Err(read_err("no such file".to_string()));
    }
    let settings = config::Config::builder()
        .add_source(config::File::from(path))
        .build()
        .map_err(|e| read_err(e.to_string()))?;
    let table = settings
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| read_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let text = flatten(value).map_err(|reason| ConfigFileError::Value {
            path: path.to_path_buf(),
            key: key.clone(),
            reason,
        })?;
        out.insert(normal(&key), text);
    }
    Ok(out)
}

fn flatten(value: config::Value) -> Result<String, String> {
    use config::ValueKind;
    match value.kind {
        ValueKind::Array(items) => Ok(items
            .into_iter()
            .map(flatten)
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        ValueKind::Table(t) => Ok(t
            .into_iter()
            .map(|(k, v)| Ok(format!("{k}={}", flatten(v)?)))
            .collect::<Result<Vec<_>, String>>()?
            .join(",")),
        ValueKind::Nil => Err("has no value".to_string()),
        other => Ok(config::Value::new(None, other).to_string()),
    }
}

/// Gives every option of `cmd` (and of its subcommands) that the file sets the file's value as
/// its default, so that the environment and the command line still win. Returns the command and
/// the ids of the options the file set; a key no option knows is an error.
pub fn apply(
    mut cmd: Command,
    path: &Path,
    values: &BTreeMap<String, String>,
) -> Result<(Command, Vec<String>), ConfigFileError> {
    let mut known = std::collections::BTreeSet::new();
    let mut used = Vec::new();
    let mut set = |arg: clap::Arg| -> clap::Arg {
        let keys = [
            arg.get_env().map(|e| normal(&e.to_string_lossy())),
            arg.get_long().map(normal),
        ];
        for key in keys.into_iter().flatten() {
            known.insert(key.clone());
            if let Some(v) = values.get(&key) {
                used.push(arg.get_id().to_string());
                return arg.default_value(v.clone());
            }
        }
        arg
    };
    cmd = cmd.mut_args(&mut set);
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, |sub| sub.mut_args(&mut set));
    }
    if let Some(key) = values
        .keys()
        .find(|k| !known.contains(*k) && *k != "config")
    {
        return Err(ConfigFileError::Unknown {
            path: path.to_path_buf(),
            key: key.clone(),
        });
    }
    used.sort();
    used.dedup();
    Ok((cmd, used))
}

/// Parses the command line of `cmd` with the config file's layer under it. The ids of the
/// options the file set come back with the matches (for `orchestrator config`).
pub fn parse_layered(
    cmd: Command,
    args: Vec<OsString>,
) -> Result<(clap::ArgMatches, Vec<String>), LayeredError> {
    let (cmd, used) = match config_path(&args) {
        Some(path) => {
            let values = load(&path)?;
            apply(cmd, &path, &values)?
        }
        None => (cmd, Vec::new()),
    };
    Ok((cmd.try_get_matches_from(args)?, used))
}

/// Why the layered parse failed.
#[derive(Debug, thiserror::Error)]
pub enum LayeredError {
    #[error(transparent)]
    File(#[from] ConfigFileError),
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{Arg, ArgAction};

    fn command() -> Command {
        Command::new("t")
            .arg(Arg::new("config").long("config").global(true))
            .arg(
                Arg::new("bootstrap")
                    .long("kafka-bootstrap")
                    .env("T_KAFKA_BOOTSTRAP_X")
                    .default_value("localhost:9092"),
            )
            .subcommand(
                Command::new("serve")
                    .arg(
                        Arg::new("workers")
                            .long("max-workers")
                            .env("T_MAX_WORKERS_X")
                            .default_value("4"),
                    )
                    .arg(
                        Arg::new("props")
                            .long("kafka-property")
                            .action(ArgAction::Append)
                            .value_delimiter(','),
                    ),
            )
    }

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_file_beats_defaults_and_the_command_line_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "c.toml",
            "T_KAFKA_BOOTSTRAP_X = \"kafka:9092\"\nmax-workers = 9\nkafka_property = [\"a=1\", \"b=2\"]\n",
        );
        let args: Vec<OsString> = ["t", "--config", path.to_str().unwrap(), "serve"]
            .iter()
            .map(OsString::from)
            .collect();
        let (m, used) = parse_layered(command(), args).unwrap();
        assert_eq!(m.get_one::<String>("bootstrap").unwrap(), "kafka:9092");
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("workers").unwrap(), "9");
        let props: Vec<&String> = serve.get_many("props").unwrap().collect();
        assert_eq!(props, ["a=1", "b=2"]);
        assert_eq!(used, ["bootstrap", "props", "workers"]);

        let args: Vec<OsString> = [
            "t",
            "--config",
            path.to_str().unwrap(),
            "serve",
            "--max-workers",
            "2",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (m, _) = parse_layered(command(), args).unwrap();
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("workers").unwrap(), "2");
    }

    #[test]
    fn an_unknown_key_or_a_missing_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            dir.path(),
            "c.yaml",
            "kafka_bootstrap: k:1\nmax_wrokers: 3\n",
        );
        let args: Vec<OsString> = ["t", "--config", path.to_str().unwrap()]
            .iter()
            .map(OsString::from)
            .collect();
        let e = parse_layered(command(), args).unwrap_err().to_string();
        assert!(e.contains("max_wrokers") && e.contains("c.yaml"), "{e}");
        let args: Vec<OsString> = ["t", "--config=/nonexistent/x.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        let e = parse_layered(command(), args).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
