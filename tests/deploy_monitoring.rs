//! The dashboards and alerts of `deploy/`: promtool checks the rules and runs their cases, the
//! dashboard is Grafana JSON whose every query names metrics a running `serve` and worker
//! export (as do the rules), and the compose stack loads the rules and provisions the dashboard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, http_status};
use files::{read, root, yaml};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e}; tools/test.sh installs it (Debian's prometheus package)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_alert_rules_pass_promtool_and_every_case() {
    let (ok, text) = promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(ok, "{text}");
    // Every alert has a case that expects it to fire.
    let rules = yaml("deploy/prometheus/alerts.yml");
    let cases = read("deploy/prometheus/alerts_test.yml");
    for group in rules["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                cases.contains(&format!("alertname: {name}")),
                "no case for {name}"
            );
            for field in ["summary", "description"] {
                assert!(
                    rule["annotations"][field].as_str().is_some(),
                    "{name}: no {field}"
                );
            }
        }
    }
}

/// The metric names an expression uses (ours and the process's).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("orchestrator_") || t.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// Every query of the dashboard (panels, rows' panels, annotations), checking each panel's shape.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut ids = BTreeSet::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "a panel id twice"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24));
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        let exprs: Vec<&str> = targets
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        assert_units(panel, &exprs);
        queries.extend(exprs.iter().map(|e| e.to_string()));
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        queries.extend(a["expr"].as_str().map(str::to_string));
    }
    queries
}

/// What a query measures, for the unit of its panel: bytes, CPU (a share of a core), seconds,
/// or a count or rate of things.
fn kind(expr: &str) -> (&'static str, &'static [&'static str]) {
    if expr.contains("_bytes") {
        ("bytes", &["bytes", "decbytes"])
    } else if expr.contains("cpu_seconds") {
        ("cpu", &["percentunit"])
    } else if expr.contains("_seconds") {
        ("seconds", &["s", "ms"])
    } else {
        ("count", &["short", "ops", "none"])
    }
}

/// A panel has a unit, its queries measure one kind of thing, and the unit is that kind's: no
/// bytes and CPU on one unitless axis.
fn assert_units(panel: &Value, exprs: &[&str]) {
    let title = panel["title"].as_str().unwrap_or_default();
    let unit = panel["fieldConfig"]["defaults"]["unit"].as_str();
    let Some(unit) = unit else {
        panic!("{title}: no unit");
    };
    let kinds: BTreeSet<&str> = exprs.iter().map(|e| kind(e).0).collect();
    assert_eq!(kinds.len(), 1, "{title}: mixes {kinds:?} on one axis");
    let allowed = kind(exprs[0]).1;
    assert!(
        allowed.contains(&unit),
        "{title}: unit {unit}, expected one of {allowed:?}"
    );
}

/// The sample names `/metrics` at `url` shows, once `ready` says it holds what it should.
fn exported(url: &str, ready: &str) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (code, text) = http_status(url);
        if code == 200 && text.contains(ready) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {ready} never shown:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn every_metric_the_dashboard_and_the_rules_name_is_exported() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/orchestrator.json"))
            .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "orchestrator");
    let mut queries = dashboard_queries(&dashboard);
    let rules = yaml("deploy/prometheus/alerts.yml");
    for group in rules["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            queries.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    let cluster = Cluster::new("monitoring");
    let _serve = cluster.serve(None, &[], "serve.log");
    let base = cluster.http_base("serve.log");
    cluster.wait_ready(&base);
    let _worker = cluster.worker("ingestion", "simulate:10", "worker.log");
    let worker = cluster.http_base("worker.log");
    let mut names = exported(
        &format!("{base}/metrics"),
        "orchestrator_dependency_up{dependency=\"store\"} 1",
    );
    names.extend(exported(
        &format!("{worker}/metrics"),
        "orchestrator_worker_tasks_in_flight",
    ));
    let mut unknown = BTreeSet::new();
    for q in &queries {
        for name in metric_names(q) {
            if !names.contains(&name) {
                unknown.insert(format!("{name} (in {q})"));
            }
        }
    }
    assert!(unknown.is_empty(), "not exported: {unknown:#?}");
    assert!(queries.len() >= 20, "{} queries", queries.len());
    readme_lists_every_metric(&names);
}

/// The README's metrics section names every metric the binaries export, and nothing they do
/// not (histograms by their family's name).
fn readme_lists_every_metric(exported: &BTreeSet<String>) {
    let readme = read("README.md");
    let start = readme
        .find("## Metrics and health")
        .expect("a metrics section");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + 3 + e);
    let section = &readme[start..end];
    let named: BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.starts_with("orchestrator_"))
        .map(str::to_string)
        .collect();
    let families: BTreeSet<String> = exported
        .iter()
        .filter(|n| n.starts_with("orchestrator_"))
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
                .unwrap_or(n)
                .to_string()
        })
        .collect();
    let missing: Vec<&String> = families.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "exported but not in the README: {missing:?}"
    );
    let unknown: Vec<&String> = named.difference(&families).collect();
    assert!(
        unknown.is_empty(),
        "in the README but not exported: {unknown:?}"
    );
}

#[test]
fn the_compose_stack_loads_the_rules_and_provisions_the_dashboard() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let mounts = |service: &str| -> Vec<(String, String)> {
        services[service]["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{service}: no volumes"))
            .iter()
            .map(|v| {
                let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
                let host = parts[0].trim_start_matches("./").to_string();
                assert!(
                    root().join(&host).exists(),
                    "{service}: {host} does not exist"
                );
                (host, parts[1].to_string())
            })
            .collect()
    };
    // Prometheus: its configuration names the rule file where the compose file mounts it.
    let prometheus = mounts("prometheus");
    let config = yaml(&prometheus[0].0);
    let rule_files: Vec<&str> = config["rule_files"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for file in &rule_files {
        let mounted = prometheus.iter().find(|(_, inside)| inside == file);
        assert_eq!(
            mounted.map(|(host, _)| host.as_str()),
            Some("deploy/prometheus/alerts.yml"),
            "{file}"
        );
    }
    assert!(!rule_files.is_empty());
    // Grafana: provisioning, and the dashboards where the provider looks for them.
    let grafana = mounts("grafana");
    let provisioning = grafana
        .iter()
        .find(|(_, inside)| inside == "/etc/grafana/provisioning")
        .map(|(host, _)| host.clone())
        .expect("grafana mounts its provisioning");
    let provider = yaml(&format!("{provisioning}/dashboards/orchestrator.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboards = grafana
        .iter()
        .find(|(_, inside)| inside == path)
        .map(|(host, _)| host.clone())
        .expect("the dashboards are mounted where the provider reads");
    assert!(root().join(&dashboards).join("orchestrator.json").exists());
    let datasource = yaml(&format!("{provisioning}/datasources/prometheus.yml"));
    let url = datasource["datasources"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("http://prometheus:"), "{url}");
    assert!(!services["prometheus"].is_badvalue() && !services["grafana"].is_badvalue());
}
