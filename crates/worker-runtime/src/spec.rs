//! Handler SPEC strings (`simulate[:MS[:FAIL_PROB]]`, `command:PROGRAM [ARGS...]`, `http:URL`)
//! and the set of handlers per zone (`--handler` for all, `--zone-handler ZONE=SPEC` for one).

use crate::bounded_output::DEFAULT_KEPT_BYTES;
use crate::command::CommandHandler;
use crate::handler::Handler;
use crate::http::HttpHandler;
use crate::simulate::SimulateHandler;
use orchestrator_protocol::Zone;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "handler spec {spec:?}: {reason} (expected simulate[:MS[:FAIL_PROB]], command:PROGRAM [ARGS...] or http:URL)"
    )]
    Invalid { spec: String, reason: String },
    #[error("zone handler {0:?}: expected ZONE=SPEC, for example raw=simulate:50")]
    ZoneSyntax(String),
    #[error("{0}")]
    Zone(#[from] orchestrator_protocol::ParseZoneError),
    #[error(
        "no handler for {zones}: give --handler SPEC (env HANDLER) for every zone, or --zone-handler ZONE=SPEC for each (--handler simulate to try the orchestrator out with pretend work)"
    )]
    Missing { zones: String },
}

impl SpecError {
    /// No handler was given for any zone.
    pub fn no_handler() -> SpecError {
        SpecError::Missing {
            zones: Zone::ALL.map(Zone::as_str).join(", "),
        }
    }
}

/// A parsed SPEC.
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerSpec {
    Simulate { ms: u64, fail_probability: f64 },
    Command { program: String, args: Vec<String> },
    Http { url: String },
}

impl FromStr for HandlerSpec {
    type Err = SpecError;
    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::Invalid {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (kind, rest) = match spec.split_once(':') {
            Some((k, r)) => (k.trim(), Some(r)),
            None => (spec.trim(), None),
        };
        match kind {
            "simulate" => {
                let mut parts = rest.unwrap_or("").split(':');
                let ms = match parts.next().map(str::trim) {
                    None | Some("") => 0,
                    Some(m) => m
                        .parse::<u64>()
                        .map_err(|_| bad("MS must be a whole number of milliseconds"))?,
                };
                let fail_probability = match parts.next().map(str::trim) {
                    None | Some("") => 0.0,
                    Some(p) => p
                        .parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| bad("FAIL_PROB must be between 0 and 1"))?,
                };
                if parts.next().is_some() {
                    return Err(bad("too many fields"));
                }
                Ok(HandlerSpec::Simulate {
                    ms,
                    fail_probability,
                })
            }
            "command" => {
                let words =
                    shlex::split(rest.unwrap_or("")).ok_or_else(|| bad("unbalanced quotes"))?;
                let mut words = words.into_iter();
                let program = words.next().ok_or_else(|| bad("no program given"))?;
                Ok(HandlerSpec::Command {
                    program,
                    args: words.collect(),
                })
            }
            "http" | "https" => {
                let rest = rest.unwrap_or("").trim();
                // Accept both `http:http://host/x` and the shorthand `http://host/x`.
                let url = if rest.starts_with("//") {
                    format!("{kind}:{rest}")
                } else {
                    rest.to_string()
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad("URL must start with http:// or https://"));
                }
                Ok(HandlerSpec::Http { url })
            }
            _ => Err(bad("unknown handler kind")),
        }
    }
}

impl fmt::Display for HandlerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerSpec::Simulate {
                ms,
                fail_probability,
            } => write!(f, "simulate:{ms}:{fail_probability}"),
            HandlerSpec::Command { program, args } => {
                // Quoted as the shell would, so that the text parses back to the same words.
                let words =
                    std::iter::once(program.as_str()).chain(args.iter().map(String::as_str));
                match shlex::try_join(words) {
                    Ok(line) => write!(f, "command:{line}"),
                    Err(_) => write!(f, "command:{program} {}", args.join(" ")),
                }
            }
            HandlerSpec::Http { url } => write!(f, "http:{url}"),
        }
    }
}

impl HandlerSpec {
    /// Builds the handler; `seed` feeds `simulate`. Output is kept as by default
    /// ([`DEFAULT_KEPT_BYTES`] per attempt).
    pub fn build(&self, seed: u64) -> Result<Arc<dyn Handler>, SpecError> {
        self.build_keeping(seed, DEFAULT_KEPT_BYTES)
    }

    /// Builds the handler, keeping `output_bytes` of each attempt's output
    /// (`ATTEMPT_OUTPUT_BYTES`; head and tail).
    pub fn build_keeping(
        &self,
        seed: u64,
        output_bytes: usize,
    ) -> Result<Arc<dyn Handler>, SpecError> {
        Ok(match self {
            HandlerSpec::Simulate {
                ms,
                fail_probability,
            } => Arc::new(SimulateHandler {
                duration: Duration::from_millis(*ms),
                fail_probability: *fail_probability,
                seed,
            }),
            HandlerSpec::Command { program, args } => Arc::new(CommandHandler {
                kept_bytes: output_bytes,
                ..CommandHandler::new(program.clone(), args.clone())
            }),
            HandlerSpec::Http { url } => Arc::new(
                HttpHandler::new(url.clone())
                    .map_err(|reason| SpecError::Invalid {
                        spec: self.to_string(),
                        reason,
                    })?
                    .keeping(output_bytes),
            ),
        })
    }
}

/// One spec per zone.
#[derive(Clone, Debug, PartialEq)]
pub struct HandlerSet {
    pub zones: [HandlerSpec; 3],
}

impl HandlerSet {
    /// `default` for every zone, then each `ZONE=SPEC` override.
    pub fn new(default: HandlerSpec, overrides: &[String]) -> Result<HandlerSet, SpecError> {
        let mut zones = [default.clone(), default.clone(), default];
        for o in overrides {
            let (zone, spec) = o
                .split_once('=')
                .ok_or_else(|| SpecError::ZoneSyntax(o.clone()))?;
            let zone: Zone = zone.parse()?;
            zones[zone.index()] = spec.parse()?;
        }
        Ok(HandlerSet { zones })
    }

    /// The handlers a command line chose: `default` for every zone (if given), then each
    /// `ZONE=SPEC` override; `None` when nothing was given at all. Some zones left without a
    /// handler is an error naming them: nothing is simulated unless asked for.
    pub fn chosen(
        default: Option<HandlerSpec>,
        overrides: &[String],
    ) -> Result<Option<HandlerSet>, SpecError> {
        let mut zones: [Option<HandlerSpec>; 3] = [default.clone(), default.clone(), default];
        for o in overrides {
            let (zone, spec) = o
                .split_once('=')
                .ok_or_else(|| SpecError::ZoneSyntax(o.clone()))?;
            let zone: Zone = zone.parse()?;
            zones[zone.index()] = Some(spec.parse()?);
        }
        if zones.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = Zone::ALL
            .iter()
            .filter(|z| zones[z.index()].is_none())
            .map(|z| z.as_str())
            .collect();
        match zones {
            [Some(raw), Some(standardized), Some(application)] => Ok(Some(HandlerSet {
                zones: [raw, standardized, application],
            })),
            _ => Err(SpecError::Missing {
                zones: missing.join(", "),
            }),
        }
    }

    /// A run's stored handlers (one SPEC per zone), parsed again.
    pub fn from_specs(specs: [&str; 3]) -> Result<HandlerSet, SpecError> {
        let [raw, standardized, application] = specs;
        Ok(HandlerSet {
            zones: [raw.parse()?, standardized.parse()?, application.parse()?],
        })
    }

    /// Each zone's SPEC, as a run keeps it (parses back to the same set).
    pub fn specs(&self) -> [String; 3] {
        self.zones.clone().map(|s| s.to_string())
    }

    /// Whether any zone only pretends (`simulate`).
    pub fn simulates(&self) -> bool {
        self.zones
            .iter()
            .any(|s| matches!(s, HandlerSpec::Simulate { .. }))
    }

    pub fn spec(&self, zone: Zone) -> &HandlerSpec {
        &self.zones[zone.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            "simulate".parse(),
            Ok(HandlerSpec::Simulate {
                ms: 0,
                fail_probability: 0.0
            })
        );
        assert_eq!(
            "simulate:20".parse(),
            Ok(HandlerSpec::Simulate {
                ms: 20,
                fail_probability: 0.0
            })
        );
        assert_eq!(
            "simulate:20:0.5".parse(),
            Ok(HandlerSpec::Simulate {
                ms: 20,
                fail_probability: 0.5
            })
        );
        assert_eq!(
            "command:./load.sh --zone 'a b'".parse(),
            Ok(HandlerSpec::Command {
                program: "./load.sh".into(),
                args: vec!["--zone".into(), "a b".into()]
            })
        );
        assert_eq!(
            "http:http://svc:8080/load".parse(),
            Ok(HandlerSpec::Http {
                url: "http://svc:8080/load".into()
            })
        );
        assert_eq!(
            "http://svc/load".parse(),
            Ok(HandlerSpec::Http {
                url: "http://svc/load".into()
            })
        );
    }

    #[test]
    fn rejects_bad_specs_with_the_reason() {
        for (spec, reason) in [
            ("simulate:abc", "MS must be"),
            ("simulate:1:2", "FAIL_PROB"),
            ("command:", "no program"),
            ("http:ftp://x", "must start with"),
            ("teleport:now", "unknown handler kind"),
        ] {
            let e = spec
                .parse::<HandlerSpec>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(reason), "{spec}: {e}");
        }
    }

    #[test]
    fn a_spec_prints_as_it_parses() {
        for text in [
            "simulate:20:0.5",
            "command:./load.sh --zone 'a b' \"c'd\"",
            "http:http://svc:8080/load",
        ] {
            let spec: HandlerSpec = text.parse().unwrap_or_else(|e| panic!("{e}"));
            let again: HandlerSpec = spec
                .to_string()
                .parse()
                .unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(again, spec, "{text}");
        }
    }

    #[test]
    fn nothing_chosen_is_none_and_a_zone_left_out_is_named() {
        assert_eq!(HandlerSet::chosen(None, &[]), Ok(None));
        let e = HandlerSet::chosen(None, &["raw=simulate".into()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("2-Standardized, 3-Application"), "{e}");
        assert!(e.contains("--handler simulate"), "{e}");
        let all = HandlerSet::chosen(
            Some("command:true".parse().unwrap_or_else(|e| panic!("{e}"))),
            &[],
        );
        assert!(matches!(all, Ok(Some(_))));
    }

    #[test]
    fn zone_overrides() {
        let set = HandlerSet::new(
            HandlerSpec::Simulate {
                ms: 1,
                fail_probability: 0.0,
            },
            &["application=command:true".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            set.spec(Zone::Application),
            HandlerSpec::Command { .. }
        ));
        assert!(matches!(
            set.spec(Zone::Raw),
            HandlerSpec::Simulate { ms: 1, .. }
        ));
        assert!(
            HandlerSet::new(
                HandlerSpec::Simulate {
                    ms: 1,
                    fail_probability: 0.0
                },
                &["gold=simulate".into()]
            )
            .is_err()
        );
    }
}
