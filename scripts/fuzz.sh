#!/usr/bin/env bash
# Fuzzing campaign (not CI): builds every cargo-fuzz target in fuzz/ and runs each for
# SECONDS (default 600) on its committed corpus, JOBS targets at a time (default: one per
# core), with libFuzzer's final statistics collected into fuzz/results/<date>.tsv (target,
# seconds, executions, executions/s, corpus size, crashes). A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1. Needs the nightly toolchain and
# cargo-fuzz (installed if missing).
#
#   scripts/fuzz.sh            # 10 minutes per target
#   scripts/fuzz.sh 60 1       # a minute each, one at a time
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${1:-600}
JOBS=${2:-$(nproc)}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked

cargo +nightly fuzz build -O
bin="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"
mkdir -p results logs
out="results/$(date -u +%Y-%m-%dT%H%M%SZ).tsv"
printf 'target\tseconds\texecutions\texec_per_s\tcorpus\tcrashes\n' > "$out"

run_one() {
  local target=$1 log="logs/$1.log"
  mkdir -p "corpus/$target" "artifacts/$target"
  local status=0
  # The binaries `fuzz build` made, run directly: `cargo fuzz run` would build again.
  "$bin/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    >"$log" 2>&1 || status=$?
  local runs rate corpus crashes
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  corpus=$(find "corpus/$target" -type f | wc -l)
  crashes=$(find "artifacts/$target" -type f | wc -l)
  [ "$status" -eq 0 ] || [ "$crashes" -gt 0 ] || crashes="exit $status"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$SECONDS_EACH" "$runs" "$rate" "$corpus" "$crashes" >> "$out"
  echo "$target: $runs runs ($rate/s), corpus $corpus, crashes $crashes"
}

targets=$(cargo +nightly fuzz list)
running=0
for target in $targets; do
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait
column -t -s $'\t' "$out"
# The corpora grew: keep them small (libFuzzer's merge keeps one input per feature).
for target in $targets; do
  rm -rf "logs/merged" && mkdir -p "logs/merged"
  "$bin/$target" -merge=1 "logs/merged" "corpus/$target" >/dev/null 2>&1 &&
    rm -rf "corpus/$target" && mv "logs/merged" "corpus/$target"
done
! awk -F'\t' 'NR > 1 && $6 != "0" { bad = 1 } END { exit !bad }' "$out"
