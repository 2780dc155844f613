//! The web console in a real browser (headless Chromium through chromedriver) against real
//! processes: a run's objects change state live on its page, a click on a failed object shows
//! its output, retry loads it; behind API tokens the console asks for one; a 10,000-object run
//! renders, and its first render and a live update are measured (see BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/mod.rs"]
mod common;
#[path = "common/services.rs"]
mod services;

use cluster::{Cluster, Proc};
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver in a process group of its own, killed with every browser it started (a test
/// that fails leaves none behind), and the temporary directory they use instead of `/tmp`:
/// a browser killed leaves its profile there, and the directory goes with the driver.
struct Driver {
    process: std::process::Child,
    _scratch: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.process.wait();
    }
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser() -> (Driver, Client) {
    use std::os::unix::process::CommandExt;
    let port = services::free_port();
    let scratch = tempfile::tempdir().expect("a temporary directory for the browser");
    let driver = Driver {
        process: Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", scratch.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver (tools/test.sh installs Debian's chromium-driver)"),
        _scratch: scratch,
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let client = ClientBuilder::native()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match client {
            Ok(c) => return (driver, c),
            Err(e) => {
                assert!(Instant::now() < deadline, "no browser session: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Waits for the element `css` names, then clicks it.
async fn click(client: &Client, css: &str) {
    let element = client
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
}

/// Evaluates `script` (a function body returning a value) until `done` holds of its result.
async fn wait_for(
    client: &Client,
    what: &str,
    script: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = client.execute(script, vec![]).await.unwrap_or_default();
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `orchestrator run FILE --http 127.0.0.1:0 ARGS…` and the console's address it prints.
fn run_with_console(file: &Path, args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--progress",
            "none",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no address printed"
        );
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    // Keep reading its standard error so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    (Proc(child), address)
}

fn count(state: &str) -> String {
    format!(
        "const c = document.querySelector('#legend [data-state={state}]'); return c ? Number(c.dataset.count) : -1;"
    )
}

/// 1001..1006 raw, 2001..2003 standardized, 3001 application; nothing ends before `DIR/go`
/// exists (the test makes it once the page is open), 2002 fails while `marker` exists, 1006 (no
/// children) runs long so that the run stays up.
fn failing_graph(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let file = dir.join("objects.json");
    std::fs::write(
        &file,
        r#"[{"IdObjet":1001,"NomObjet":"Customers"},{"IdObjet":1002},{"IdObjet":1003},{"IdObjet":1004},{"IdObjet":1005},{"IdObjet":1006,"NomObjet":"Slow"},
            {"IdObjet":2001,"IdObjet_Parent":"1001,1002"},{"IdObjet":2002,"NomObjet":"Ledger","IdObjet_Parent":"1003"},{"IdObjet":2003,"IdObjet_Parent":"1004,1005"},
            {"IdObjet":3001,"IdObjet_Parent":"2001,2002,2003"}]"#,
    )
    .unwrap();
    let marker = dir.join("fail-2002");
    std::fs::write(&marker, "").unwrap();
    let handler = script(
        dir,
        "handler.sh",
        &format!(
            "cat > /dev/null\necho \"working on $ORCH_OBJECT_ID\"\nif [ \"$ORCH_OBJECT_ID\" = 1006 ]; then sleep 120; fi\nwhile [ ! -e '{go}' ]; do sleep 0.05; done\nsleep 0.2\nif [ \"$ORCH_OBJECT_ID\" = 2002 ] && [ -e '{fail}' ]; then echo 'boom: the ledger disk is full' >&2; exit 1; fi",
            go = dir.join("go").display(),
            fail = marker.display()
        ),
    );
    (file, marker, format!("command:{}", handler.display()))
}

/// Runs the browser's side of a test.
fn in_browser<F: std::future::Future<Output = ()>>(test: impl FnOnce(Client) -> F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_driver, client) = browser().await;
        test(client).await;
    });
}

#[test]
fn a_run_changes_live_and_a_failed_object_shows_its_output_and_loads_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (file, marker, handler) = failing_graph(dir.path());
    let go = dir.path().join("go");
    let (_run, address) = run_with_console(
        &file,
        &[
            "--handler",
            &handler,
            "--max-retries",
            "0",
            "--max-workers",
            "2",
        ],
    );
    in_browser(|client| async move {
        // The runs list shows the run; its link opens the run's page.
        client.goto(&format!("{address}/")).await.unwrap();
        click(&client, "tr[data-run] a").await;
        client
            .wait()
            .for_element(Locator::Css("#legend"))
            .await
            .unwrap();
        // Objects change state on the page without a reload: none has loaded when it opens.
        let before = client.execute(&count("loaded"), vec![]).await.unwrap();
        let before = before.as_i64().unwrap();
        assert_eq!(before, 0);
        std::fs::write(go, "").unwrap();
        wait_for(&client, "more loaded objects", &count("loaded"), |v| {
            v.as_i64().unwrap_or(0) > before
        })
        .await;
        wait_for(
            &client,
            "live updates",
            "return Number(document.body.dataset.updates || 0);",
            |v| v.as_i64().unwrap_or(0) > 0,
        )
        .await;
        // 2002 fails: filter on failed objects, click it, show its first attempt's output.
        wait_for(&client, "a failed object", &count("failed"), |v| {
            v.as_i64().unwrap_or(0) >= 1
        })
        .await;
        click(&client, "#legend [data-state=failed]").await;
        click(&client, "#matches tr[data-object='2002']").await;
        let state = client
            .wait()
            .for_element(Locator::Css("#object-state"))
            .await
            .unwrap();
        assert_eq!(
            state.attr("data-state").await.unwrap().as_deref(),
            Some("failed")
        );
        click(&client, ".show-output[data-attempt='1']").await;
        let output = wait_for(
        &client,
        "the attempt's output",
        "const o = document.querySelector(\"pre.output[data-attempt='1']\"); return o ? o.textContent : '';",
        |v| v.as_str().is_some_and(|t| !t.is_empty()),
    )
    .await;
        let output = output.as_str().unwrap();
        assert!(output.contains("boom: the ledger disk is full"), "{output}");
        assert!(output.contains("working on 2002"), "{output}");
        // 3001, upstream-failed, offers to retry the failure that blocks it: it and 2002 load
        // (the panel follows the object live).
        std::fs::remove_file(&marker).unwrap();
        click(&client, "#legend [data-state=upstream_failed]").await;
        click(&client, "#matches tr[data-object='3001']").await;
        wait_for(
            &client,
            "3001's panel",
            "const s = document.querySelector('#object-state'); return s ? s.dataset.state : '';",
            |v| v == "upstream_failed",
        )
        .await;
        let label = client.find(Locator::Css("#retry")).await.unwrap();
        assert_eq!(
            label.text().await.unwrap(),
            "Retry with its failed ancestors"
        );
        click(&client, "#retry").await;
        wait_for(
            &client,
            "3001 to load after its blocker's retry",
            "const s = document.querySelector('#object-state'); return s ? s.dataset.state : '';",
            |v| v == "loaded",
        )
        .await;
        let loaded = client.execute(&count("failed"), vec![]).await.unwrap();
        assert_eq!(loaded.as_i64(), Some(0), "2002 loaded too");
        if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
            let png = client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join("console-run.png"), png).unwrap();
        }
        client.close().await.unwrap();
    });
}

#[test]
fn behind_api_tokens_the_console_asks_for_one() {
    let cluster = Cluster::new("console-token");
    let file = generated(cluster.dir(), 30, 3);
    let token = "console-token-0123456789";
    let _serve = cluster.serve(Some(&file), &["--api-token", token], "serve.log");
    let base = cluster.http_base("serve.log");
    cluster.wait_ready(&base);
    // Every object loads but 3007, which fails for good: the run ends failed.
    let handler = script(
        cluster.dir(),
        "load.sh",
        "cat > /dev/null\nsleep 0.1\nif [ \"$ORCH_OBJECT_ID\" = 3007 ]; then echo 'bad rows' >&2; exit 65; fi",
    );
    let _workers = cluster.workers(&format!("command:{}", handler.display()));
    in_browser(|client| async move {
        client.goto(&format!("{base}/")).await.unwrap();
        // 401: the token dialog; a wrong token is asked for again, the right one lists the run.
        let input = client
            .wait()
            .for_element(Locator::Css("#token-input"))
            .await
            .unwrap();
        wait_for(
            &client,
            "the token dialog",
            "return document.querySelector('#token-dialog').open;",
            |v| v == true,
        )
        .await;
        input.send_keys("not-the-token-at-all").await.unwrap();
        click(&client, "#token-ok").await;
        wait_for(
            &client,
            "the dialog again",
            "return document.querySelector('#token-dialog').open;",
            |v| v == true,
        )
        .await;
        let input = client.find(Locator::Css("#token-input")).await.unwrap();
        input.send_keys(token).await.unwrap();
        click(&client, "#token-ok").await;
        click(&client, "tr[data-run] a").await;
        // The run's page reads with the token too, live: every object but one loads, and the
        // run says it failed, in its own colour.
        wait_for(
            &client,
            "the run to finish",
            "const s = document.querySelector('#run-status'); return s ? s.dataset.status : '';",
            |v| v == "finished",
        )
        .await;
        let loaded = client.execute(&count("loaded"), vec![]).await.unwrap();
        assert_eq!(loaded.as_i64(), Some(29));
        let shown = client
            .execute(
                "const s = document.querySelector('#run-status'); return [s.textContent, getComputedStyle(s).color];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(shown[0], "failed", "{shown}");
        assert_eq!(shown[1], "rgb(222, 45, 38)", "failed in red: {shown}");
        // The runs list says so too.
        client.goto(&format!("{base}/")).await.unwrap();
        wait_for(
            &client,
            "the run listed as failed",
            "const r = document.querySelector('tr[data-run]'); return r ? r.dataset.outcome : '';",
            |v| v == "failed",
        )
        .await;
        client.close().await.unwrap();
    });
}

#[test]
fn a_ten_thousand_object_run_renders_and_follows_live() {
    let dir = tempfile::tempdir().unwrap();
    let file = generated(dir.path(), 10_000, 1);
    let (_run, address) =
        run_with_console(&file, &["--handler", "simulate:200", "--max-workers", "8"]);
    in_browser(|client| async move {
        let runs: serde_json::Value = reqwest::get(format!("{address}/api/runs"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let run = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
        client.goto(&format!("{address}/runs/{run}")).await.unwrap();
        let first = wait_for(
            &client,
            "the first render",
            "return Number(document.body.dataset.firstRenderMs || 0);",
            |v| v.as_f64().unwrap_or(0.0) > 0.0,
        )
        .await;
        let drawn = client
            .execute(
                "return document.querySelectorAll('#legend .chip').length;",
                vec![],
            )
            .await
            .unwrap();
        assert!(drawn.as_i64().unwrap_or(0) >= 3, "{drawn}");
        // Updates keep coming and are applied (the page does not freeze).
        let seen = wait_for(
            &client,
            "ten live updates",
            "return Number(document.body.dataset.updates || 0);",
            |v| v.as_i64().unwrap_or(0) >= 10,
        )
        .await;
        let update = client
            .execute(
                "return Number(document.body.dataset.lastUpdateMs || -1);",
                vec![],
            )
            .await
            .unwrap();
        eprintln!(
            "console, 10,000 objects: first render {} ms after navigation, a live update applied and drawn in {} ms ({} updates seen)",
            first, update, seen
        );
        assert!(update.as_f64().unwrap_or(-1.0) >= 0.0);
        if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
            let png = client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join("console-10k.png"), png).unwrap();
        }
        client.close().await.unwrap();
    });
}
