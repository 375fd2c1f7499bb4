#!/usr/bin/env bash
# The runbook's recovery drills that fit one machine (tests/tests/dr_drills.rs, not part of the
# test command: they wait on production timings). Each prints its measured recovery time beside
# the runbook's; this collects them into bench/results/dr-<time>.tsv and prints the table
# (docs/DR.md keeps the figures of a run). Needs what scripts/test.sh installs (PostgreSQL,
# Redis, moto_server); run that once first on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
cargo build --workspace --locked
mkdir -p bench/results
out="bench/results/dr-$(date -u +%Y-%m-%dT%H%M%SZ).tsv"
log=$(mktemp)
status=0
cargo nextest run -p beast-tests --test dr_drills --run-ignored only --no-capture -j 1 \
  >"$log" 2>&1 || status=$?
printf 'scenario\tmeasured\trunbook\tchecked\n' > "$out"
grep '^DRILL' "$log" | cut -f2- >> "$out" || true
column -t -s $'\t' "$out"
if [ "$status" -ne 0 ]; then
  grep -E 'FAIL|panicked' "$log" | head -20
  echo "a drill failed; its log: $log" >&2
  exit 1
fi
echo "results: $out"
