#!/usr/bin/env bash
# The whole test suite, from a fresh clone. Installs what the tests need and is missing, starts
# the services they use, checks formatting and lints, then runs every test of the workspace.
# CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
rustc --version   # rust-toolchain.toml pins the version; rustup selects (or installs) it
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# The bench report test opens the HTML page in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  step "installing chromium"
  as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q chromium || { as_root apt-get update -q && as_root apt-get install -y -q chromium; }
fi

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# --workspace builds every binary first, so the end-to-end tests run the `beast` of this tree.
cargo nextest run --workspace --locked
cargo test --workspace --doc --locked
