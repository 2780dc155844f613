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

step "services"
# The tests start their own redis-server on a free loopback port (or use REDIS_URL when set).
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: install it (Debian: apt-get install redis-server) or set REDIS_URL" >&2
        exit 1
    fi
fi
command -v redis-server >/dev/null 2>&1 && redis-server --version

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked
