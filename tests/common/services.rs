//! Real services for the tests: a `redis-server` and a Tansu broker on free loopback ports (or
//! the ones `REDIS_URL` and `KAFKA_BOOTSTRAP` name), stopped when the test's guard is dropped;
//! and a wait for consumers to have their partitions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Redis to test against. Dropping it stops the server it started.
pub struct TestRedis {
    pub url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    /// The server's port and persistence options, to start it again (see [`TestRedis::restart`]).
    port: u16,
    persistence: &'static [&'static str],
}

impl TestRedis {
    /// Whether the test started this server (and so may reconfigure it).
    pub fn is_own(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (`signal`: "TERM" lets it save, "KILL" does not), leaves it down for
    /// `down`, and starts it again on the same port with the same files.
    pub fn restart(&mut self, signal: &str, down: Duration) {
        self.stop(signal);
        std::thread::sleep(down);
        self.start();
    }

    /// Stops the server with `signal` ("TERM" lets it save, "KILL" does not).
    pub fn stop(&mut self, signal: &str) {
        let mut child = self.child.take().expect("a server of the test's own");
        let pid = child.id().to_string();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        child.wait().unwrap();
    }

    /// Starts the stopped server again on its port, with its files.
    pub fn start(&mut self) {
        let dir = self._dir.as_ref().unwrap().path().to_path_buf();
        self.child = Some(start_redis(&dir, self.port, self.persistence));
    }
}

/// Persistence of the default test server: none.
const NO_PERSISTENCE: &[&str] = &["--save", "", "--appendonly", "no"];
/// Append-only file, synced every second, as a production Redis keeps its data.
const AOF: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
];

fn start_redis(dir: &std::path::Path, port: u16, persistence: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(persistence)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed for these tests (tools/test.sh installs it: apt-get install redis-server)");
    wait_for_port(port, "redis-server", Duration::from_secs(10));
    child
}

/// Waits until `name` listens on `port` of loopback, at most `within`.
fn wait_for_port(port: u16, name: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `REDIS_URL` if set, else a new `redis-server` (tools/test.sh installs it).
pub fn redis() -> TestRedis {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return TestRedis {
            url,
            child: None,
            _dir: None,
            port: 0,
            persistence: NO_PERSISTENCE,
        };
    }
    own_redis(NO_PERSISTENCE)
}

/// A new `redis-server` of the test's own with an append-only file, to restart mid-test.
pub fn durable_redis() -> TestRedis {
    own_redis(AOF)
}

fn own_redis(persistence: &'static [&'static str]) -> TestRedis {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = start_redis(dir.path(), port, persistence);
    TestRedis {
        url: format!("redis://127.0.0.1:{port}"),
        child: Some(child),
        _dir: Some(dir),
        port,
        persistence,
    }
}

/// A key prefix of its own for each test, so tests can share one server.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "test-{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A Kafka-protocol broker to test against. Dropping it stops the broker it started.
pub struct TestKafka {
    pub bootstrap: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestKafka {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `tansu` binary: `TANSU_BIN`, else on PATH, else in ~/.cargo/bin (tools/test.sh installs it).
pub fn tansu_bin() -> String {
    if let Ok(b) = std::env::var("TANSU_BIN") {
        return b;
    }
    let home_bin = std::env::var("HOME")
        .map(|h| format!("{h}/.cargo/bin/tansu"))
        .unwrap_or_default();
    if Command::new("tansu")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        "tansu".to_string()
    } else {
        home_bin
    }
}

impl TestKafka {
    /// The broker's process id when the tests started it (not when `KAFKA_BOOTSTRAP` is set).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the broker (`signal`: "TERM" or "KILL"), leaves it down for `down`, and starts it
    /// again on the same port with the same storage.
    pub fn restart(&mut self, signal: &str, down: Duration) {
        let mut child = self.child.take().expect("a broker of the test's own");
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
        std::thread::sleep(down);
        let port = self.bootstrap.rsplit(':').next().unwrap().parse().unwrap();
        let dir = self._dir.as_ref().unwrap().path().to_path_buf();
        self.child = Some(start_tansu(&dir, port));
    }

    /// What the broker the tests started has logged (empty for one of `KAFKA_BOOTSTRAP`).
    pub fn log(&self) -> String {
        self._dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.path().join("broker.log")).ok())
            .unwrap_or_default()
    }
}

/// Starts Tansu on `port` with its SQLite storage in `dir` (appending to `dir/broker.log`).
fn start_tansu(dir: &std::path::Path, port: u16) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .unwrap();
    let child = Command::new(tansu_bin())
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"])
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("tansu must be installed for these tests (tools/test.sh installs it with cargo install)");
    wait_for_port(port, "tansu", Duration::from_secs(30));
    child
}

/// `KAFKA_BOOTSTRAP` if set, else a new Tansu broker with durable SQLite storage on a free port.
pub fn kafka() -> TestKafka {
    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP") {
        return TestKafka {
            bootstrap,
            child: None,
            _dir: None,
        };
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = start_tansu(dir.path(), port);
    index_tansu_headers(dir.path());
    TestKafka {
        bootstrap: format!("127.0.0.1:{port}"),
        child: Some(child),
        _dir: Some(dir),
    }
}

/// Adds the header index Tansu 0.6.0's SQLite schema lacks (see tools/tansu-header-index.sql), with
/// the `sqlite3` shell (tools/test.sh installs it).
pub fn index_tansu_headers(dir: &std::path::Path) {
    let sql = include_str!("../../tools/tansu-header-index.sql");
    if let Err(e) = run_sqlite3(&dir.join("tansu.db"), sql) {
        panic!(
            "could not index Tansu's headers with the sqlite3 shell ({e}): tools/test.sh installs it"
        );
    }
}

/// `sqlite3 DB < sql`, waiting up to 10 s for the database's lock.
fn run_sqlite3(db: &std::path::Path, sql: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(db)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(sql.as_bytes())
        .map_err(|e| e.to_string())?;
    match child.wait() {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// Waits until each of these consumer logs (at level info) says its last rebalance gave it
/// partitions.
pub fn wait_assigned(logs: &[std::path::PathBuf], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let last: Vec<Option<String>> = logs
            .iter()
            .map(|log| {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.lines()
                    .rev()
                    .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))
                    .map(str::to_string)
            })
            .collect();
        let has_partitions = |l: &Option<String>| {
            l.as_deref()
                .is_some_and(|l| l.contains("partitions assigned") && !l.contains("count=0"))
        };
        if last.iter().all(has_partitions) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every member has partitions: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
