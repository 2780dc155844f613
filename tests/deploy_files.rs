//! No Docker engine runs here, so this reads the compose file, the Dockerfiles and the Prometheus
//! configuration and checks them against the code: every environment variable they set is one
//! the named binary accepts (from its `--help`), every binary and package they name exists in
//! the workspace, and the ports agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;
#[path = "common/files.rs"]
mod files;

use common::*;
use files::{read, root, yaml};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::Yaml;

/// The workspace binary `name` (built next to `orchestrator`).
fn binary(name: &str) -> PathBuf {
    let path = Path::new(bin()).with_file_name(name);
    assert!(path.exists(), "{name} is not a binary of the workspace");
    path
}

/// The environment variables a binary (with `args`, e.g. a subcommand) accepts, from its help.
fn accepted_env(name: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(binary(name))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{name} {args:?} --help");
    let help = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    help.split("[env: ")
        .skip(1)
        // `[env: NAME=VALUE]`, or `[env: NAME]` for a secret whose value is hidden.
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_string)
        .collect()
}

/// The strings of a YAML list.
fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect()
}

/// The port of an address such as `0.0.0.0:8080`.
fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Every package name of the workspace.
fn workspace_packages() -> BTreeSet<String> {
    let manifest: Vec<String> = read("Cargo.toml")
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .strip_suffix("\",")
                .map(str::to_string)
        })
        .collect();
    manifest
        .iter()
        .map(|member| {
            let text = read(&format!("{member}/Cargo.toml"));
            let line = text.lines().find(|l| l.starts_with("name = ")).unwrap();
            line.trim_start_matches("name = ")
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// (instruction, arguments) of a Dockerfile, continuation lines joined.
fn instructions(path: &str) -> Vec<(String, String)> {
    let text = read(path).replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (op, rest) = l.split_once(' ')?;
            Some((op.to_uppercase(), rest.trim().to_string()))
        })
        .collect()
}

/// `KEY=VALUE` pairs of an ENV instruction.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    args.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The binary a service runs, and the arguments before the options (`serve`).
fn service_command(service: &Yaml) -> (String, Vec<String>) {
    let list = |y: &Yaml| -> Vec<String> {
        y.as_vec()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The service's entrypoint and command, else the Dockerfile's.
    let dockerfile = service["build"]["dockerfile"].as_str().unwrap();
    let from_dockerfile = |instruction: &str| -> Vec<String> {
        instructions(dockerfile)
            .into_iter()
            .rfind(|(op, _)| op == instruction)
            .map(|(_, a)| serde_json::from_str(&a).unwrap())
            .unwrap_or_default()
    };
    let mut argv = list(&service["entrypoint"]);
    if argv.is_empty() {
        argv = from_dockerfile("ENTRYPOINT");
    }
    let command = list(&service["command"]);
    argv.extend(if command.is_empty() {
        from_dockerfile("CMD")
    } else {
        command
    });
    // The init process that reaps handlers' children runs the program.
    if argv.first().is_some_and(|a| a.ends_with("/tini")) {
        argv.remove(0);
        if argv.first().is_some_and(|a| a == "--") {
            argv.remove(0);
        }
    }
    let program = argv.remove(0);
    (program, argv)
}

#[test]
fn the_dockerfiles_build_workspace_binaries_and_set_only_env_they_accept() {
    let packages = workspace_packages();
    for (file, bins) in [
        ("Dockerfile.orchestrator", vec!["orchestrator"]),
        (
            "Dockerfile.worker",
            vec![
                "ingestion-worker",
                "standardization-worker",
                "application-worker",
            ],
        ),
    ] {
        let ops = instructions(file);
        // Multi-stage, a cached dependency layer, a non-root user.
        assert!(
            ops.iter().filter(|(op, _)| op == "FROM").count() >= 3,
            "{file}"
        );
        assert!(
            ops.iter()
                .any(|(op, a)| op == "RUN" && a.contains("cargo chef cook")),
            "{file}"
        );
        // Stripped binaries, an init process as PID 1, a health check on the HTTP port.
        assert!(
            ops.iter()
                .any(|(op, a)| op == "ARG" && a == "CARGO_PROFILE_RELEASE_STRIP=symbols"),
            "{file}: binaries not stripped"
        );
        let entry = ops
            .iter()
            .rfind(|(op, _)| op == "ENTRYPOINT")
            .map(|(_, a)| a.clone())
            .unwrap();
        assert!(
            entry.starts_with(r#"["/usr/bin/tini", "--""#),
            "{file}: {entry}"
        );
        assert!(
            ops.iter()
                .any(|(op, a)| op == "RUN" && a.contains("apt-get install") && a.contains(" tini")),
            "{file}: tini is not installed"
        );
        let health = ops
            .iter()
            .find(|(op, _)| op == "HEALTHCHECK")
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("{file}: no HEALTHCHECK"));
        assert!(health.contains("/health/liveness"), "{file}: {health}");
        let user = ops
            .iter()
            .rfind(|(op, _)| op == "USER")
            .map(|(_, a)| a.clone());
        assert!(
            user.is_some_and(|u| u != "root" && u != "0"),
            "{file}: runs as root"
        );
        for (op, args) in &ops {
            for word in args.split_whitespace() {
                if let Some(p) = word.strip_prefix("--package=") {
                    assert!(packages.contains(p), "{file}: package {p}");
                }
            }
            if op == "RUN" && args.contains("--package ") {
                for p in args.split("--package ").skip(1) {
                    let p = p.split_whitespace().next().unwrap();
                    assert!(
                        packages.contains(p),
                        "{file}: no package {p} in the workspace"
                    );
                }
            }
            if op == "COPY" && args.contains("/target/release/") {
                let name = args.split("/target/release/").nth(1).unwrap();
                let name = name.split_whitespace().next().unwrap();
                binary(name);
                assert!(bins.contains(&name), "{file}: copies {name}");
            }
        }
        // ENV: accepted by every binary of the image; EXPOSE agrees with the HTTP address.
        let env: Vec<(String, String)> = ops
            .iter()
            .filter(|(op, _)| op == "ENV")
            .flat_map(|(_, a)| env_pairs(a))
            .collect();
        assert!(!env.is_empty(), "{file}");
        for b in &bins {
            let args: &[&str] = if *b == "orchestrator" {
                &["serve"]
            } else {
                &[]
            };
            let accepted = accepted_env(b, args);
            for (k, _) in &env {
                assert!(accepted.contains(k), "{file}: {b} does not accept {k}");
            }
        }
        let exposed: Vec<u16> = ops
            .iter()
            .filter(|(op, _)| op == "EXPOSE")
            .map(|(_, a)| a.parse().unwrap())
            .collect();
        let (http_var, http) = env
            .iter()
            .find(|(k, _)| k.ends_with("HTTP_ADDR"))
            .map(|(k, v)| (k.clone(), port(v)))
            .unwrap();
        assert!(
            health.contains(&format!("${{{http_var}##*:}}")),
            "{file}: the health check does not follow {http_var}"
        );
        assert_eq!(exposed, vec![http], "{file}: EXPOSE and the HTTP address");
        // What the Dockerfiles copy from the project exists.
        for (op, args) in &ops {
            if op == "COPY" && !args.starts_with("--from") && !args.starts_with(". ") {
                let src = args.split_whitespace().next().unwrap();
                assert!(root().join(src).exists(), "{file}: COPY {src}");
            }
        }
    }
}

#[test]
fn the_compose_stack_agrees_with_the_binaries_and_prometheus_scrapes_them() {
    let compose = yaml("docker-compose.yml");
    let services = compose["services"].as_hash().unwrap();
    let mut http_ports: BTreeMap<String, u16> = BTreeMap::new();
    // Settings that `serve` and every worker must share: a worker on another topic layout, or
    // on other partition counts, would never see its Ready events.
    const SHARED: [&str; 3] = ["READY_TOPIC_PER_ZONE", "KAFKA_PARTITIONS", "TOPIC_READY"];
    let mut shared: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut ours = 0;
    let mut images: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, service) in services {
        let name = name.as_str().unwrap().to_string();
        if service["build"].is_badvalue() {
            continue; // kafka, redis, prometheus: images of their own
        }
        ours += 1;
        // An exit with an error (a lost writer lease, a broker refusing us) is restarted.
        assert_eq!(
            service["restart"].as_str(),
            Some("on-failure"),
            "{name}: restart policy"
        );
        let dockerfile = service["build"]["dockerfile"].as_str().unwrap();
        assert!(root().join(dockerfile).exists(), "{name}: {dockerfile}");
        images
            .entry(dockerfile.to_string())
            .or_default()
            .insert(service["image"].as_str().unwrap_or_default().to_string());
        // A health check, and a start once what it needs is healthy.
        let test = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains("/health/liveness"),
            "{name}: health check {test:?}"
        );
        for (dep, how) in service["depends_on"].as_hash().unwrap() {
            assert_eq!(
                how["condition"].as_str(),
                Some("service_healthy"),
                "{name}: depends on {dep:?}"
            );
        }
        let (program, command) = service_command(service);
        let sub: Vec<&str> = command.iter().take(1).map(String::as_str).collect();
        let accepted = accepted_env(&program, &sub);
        let env = service["environment"].as_hash().unwrap();
        for (k, v) in env {
            let k = k.as_str().unwrap();
            assert!(
                accepted.contains(k),
                "{name}: {program} does not accept {k}"
            );
            if k.ends_with("HTTP_ADDR") {
                let value = v.as_str().map(str::to_string).unwrap_or_default();
                http_ports.insert(name.clone(), port(&value));
            }
            if k == "KAFKA_BOOTSTRAP" {
                let host = v.as_str().unwrap().split(':').next().unwrap();
                assert!(
                    services.contains_key(&Yaml::String(host.into())),
                    "{name}: {host}"
                );
            }
            if SHARED.contains(&k) {
                shared
                    .entry(k)
                    .or_default()
                    .insert(v.as_str().unwrap().to_string());
            }
            if k == "REDIS_HOST" {
                let host = v.as_str().unwrap();
                assert!(
                    services.contains_key(&Yaml::String(host.into())),
                    "{name}: {host}"
                );
            }
        }
        assert!(
            http_ports.contains_key(&name),
            "{name} sets no HTTP address"
        );
        // Published ports reach the HTTP address inside the container.
        for p in service["ports"].as_vec().into_iter().flatten() {
            let inner = p
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
            assert_eq!(inner, http_ports[&name], "{name}: published port");
        }
    }
    assert_eq!(ours, 4, "the orchestrator and three workers");
    // One named image per Dockerfile: the three workers share theirs.
    for (dockerfile, names) in &images {
        assert_eq!(names.len(), 1, "{dockerfile}: images {names:?}");
        assert!(
            !names.iter().any(String::is_empty),
            "{dockerfile}: an unnamed image"
        );
    }
    // The API is closed by a token; Prometheus starts once the orchestrator is healthy.
    let orchestrator = &services[&Yaml::String("orchestrator".into())];
    assert!(
        orchestrator["environment"]["API_TOKEN"]
            .as_str()
            .is_some_and(|t| t.len() >= 16),
        "the compose file sets no API token"
    );
    assert_eq!(
        services[&Yaml::String("prometheus".into())]["depends_on"]["orchestrator"]["condition"]
            .as_str(),
        Some("service_healthy")
    );
    for (k, values) in &shared {
        assert_eq!(values.len(), 1, "{k} differs between services: {values:?}");
    }
    for w in [
        "ingestion-worker",
        "standardization-worker",
        "application-worker",
    ] {
        let (program, _) = service_command(&services[&Yaml::String(w.into())]);
        assert_eq!(program, w);
    }
    assert_eq!(
        service_command(&services[&Yaml::String("orchestrator".into())]).1,
        ["serve"]
    );

    // Redis keeps what it is told (append-only file), Kafka runs in KRaft mode.
    let redis = strings(&services[&Yaml::String("redis".into())]["command"]);
    assert!(
        redis.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{redis:?}"
    );
    let kafka_service = &services[&Yaml::String("kafka".into())];
    let kafka = &kafka_service["environment"];
    assert_eq!(
        kafka["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller")
    );
    // Kafka advertises the address our services use, and one for clients on the host (the old
    // system's workers) on a published port.
    let advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].as_str().unwrap();
    assert!(advertised.contains("//kafka:9092"), "{advertised}");
    let published = strings(&kafka_service["ports"]);
    assert!(
        published
            .iter()
            .any(|p| advertised.contains(&format!("//localhost:{}", p.split(':').next().unwrap()))),
        "{advertised} {published:?}"
    );

    // Prometheus scrapes every one of our services on its HTTP port, by DNS name.
    let prom_service = &services[&Yaml::String("prometheus".into())];
    let mount = prom_service["volumes"][0].as_str().unwrap();
    let config = mount.split(':').next().unwrap().trim_start_matches("./");
    let prom = yaml(config);
    let mut scraped: BTreeMap<String, u16> = BTreeMap::new();
    for job in prom["scrape_configs"].as_vec().unwrap() {
        for sd in job["dns_sd_configs"].as_vec().unwrap() {
            let port = sd["port"].as_i64().unwrap() as u16;
            for n in sd["names"].as_vec().unwrap() {
                scraped.insert(n.as_str().unwrap().to_string(), port);
            }
        }
    }
    assert_eq!(
        scraped, http_ports,
        "Prometheus targets and the services' HTTP ports"
    );
}
