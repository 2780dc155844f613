#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing, then checks formatting,
# runs clippy with warnings as errors, and runs every test (unit, property, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "missing: $* (install with your package manager)" >&2
        exit 1
    fi
}

step "build dependencies"
# rdkafka builds librdkafka from source, with TLS from the system's OpenSSL.
command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config
pkg-config --exists openssl 2>/dev/null || apt_install libssl-dev
command -v make >/dev/null 2>&1 || apt_install make

step "services"
# The tests start their own redis-server and Kafka-protocol broker (Tansu) on free loopback
# ports, or use REDIS_URL and KAFKA_BOOTSTRAP when set.
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
fi
command -v redis-server >/dev/null 2>&1 && redis-server --version
if [ -z "${KAFKA_BOOTSTRAP:-}" ] && ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    echo "installing the Tansu broker (a one-time build of about 15 minutes)"
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
fi
# The sqlite3 shell adds the index Tansu's SQLite storage lacks (tools/tansu-header-index.sql).
if [ -z "${KAFKA_BOOTSTRAP:-}" ] && ! command -v sqlite3 >/dev/null 2>&1; then
    apt_install sqlite3
fi

# promtool checks the alert rules of deploy/prometheus and runs their cases.
command -v promtool >/dev/null 2>&1 || apt_install prometheus
# Headless Chromium and its WebDriver run the web console's browser tests.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
fi

# A build from scratch (CI) gains nothing from incremental state: it only takes disk.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# The end-to-end tests start the worker binaries as processes: build every binary first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
