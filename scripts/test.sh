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

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
# --workspace builds every binary first, so the end-to-end tests run the `beast` of this tree.
cargo nextest run --workspace --locked
cargo test --workspace --doc --locked
