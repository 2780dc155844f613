//! `orchestrator config`: the settings `serve` would run with, each with its source (command
//! line, environment, config file or default; a default `serve` works out is shown as such);
//! passwords and secret properties are hidden. Settings `serve` would refuse are exit 2.

use crate::{EXIT_INVALID, EXIT_OK};
use clap::ArgMatches;
use clap::parser::ValueSource;
use orchestrator::cli::ConfigArgs;
use orchestrator_store::redact_url;
use serde_json::json;

/// Property names whose values are secrets.
const SECRET_WORDS: [&str; 5] = ["password", "secret", "jaas", "token", "key"];

fn hide(env: &str, value: &str) -> String {
    match env {
        "REDIS_URL" | "HANDLER" => redact_url(value),
        "API_TOKEN" if !value.is_empty() => "***".to_string(),
        "KAFKA_PROPERTIES" => value
            .split(',')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if SECRET_WORDS.iter().any(|w| k.to_lowercase().contains(w)) => {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => value.to_string(),
    }
}

/// Prints every setting of the `config` subcommand's matches.
pub fn config(
    args: &[clap::Arg],
    matches: &ArgMatches,
    from_file: &[String],
    config: &ConfigArgs,
) -> i32 {
    let json_out = config.json;
    let computed = super::serve::computed_defaults(&config.serve);
    let refused = super::serve::check(&config.serve).err();
    let mut rows = Vec::new();
    for arg in args {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version" | "json") {
            continue;
        }
        let name = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .or_else(|| arg.get_long().map(|l| format!("--{l}")))
            .unwrap_or_else(|| id.to_string());
        let value = matches
            .get_raw(id)
            .map(|vs| {
                vs.map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "command line",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) if from_file.iter().any(|f| f == id) => "config file",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let mut value = value;
        if source == "unset"
            && let Some((_, default)) = computed.iter().find(|(n, _)| *n == name)
        {
            (value, source) = (default.clone(), "default");
        }
        rows.push((name.clone(), hide(&name, &value), source));
    }
    let code = if refused.is_some() {
        EXIT_INVALID
    } else {
        EXIT_OK
    };
    if json_out {
        let settings: Vec<_> = rows
            .iter()
            .map(|(k, v, s)| json!({ "name": k, "value": v, "source": s }))
            .collect();
        let mut answer = json!({ "settings": settings, "valid": refused.is_none() });
        if let Some(why) = &refused {
            answer["error"] = json!(why);
        }
        outln!("{answer}");
    } else {
        let width = rows
            .iter()
            .map(|r| r.0.len() + r.1.len() + 1)
            .max()
            .unwrap_or(0);
        outln!("# orchestrator serve: command line > environment > config file > default");
        for (k, v, s) in rows {
            let line = format!("{k}={v}");
            outln!("{line:width$}  # {s}");
        }
    }
    if let Some(why) = refused {
        eprintln!("error: serve would not start with these settings: {why}");
    }
    code
}
