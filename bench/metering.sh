#!/usr/bin/env bash
# Throughput with usage metering to PostgreSQL on, against metering off, in the same run.
# usage: bench/metering.sh [REPS] [DURATION]   (release build first:
#        cargo build --release -p beast-engine -p beast-bench)
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth); uses a fresh database beast_metering_bench.
# The whole server on CPU 0 (one reactor, and the side thread beside it, so metering's cost is
# taken from the server's own core), the load pinned to CPU 1; PostgreSQL floats.
# SINK=sqlite compares the embedded store instead of PostgreSQL.
# PG_CPU=1 pins PostgreSQL's backends to CPU 1 (off the reactor's core, as a database on
# another machine would be), sharing it with the load generator.
# PG_NICE=1 renices the PostgreSQL backends serving beast to 19, standing in for a database
# on other machines (as Aurora is): then only beast's own metering work competes with serving.
# Prints one JSON line per run (throughput, p99, rows the sink wrote per second, the embedded
# store's size after the run) and a summary; results/metering-<date>[-pgnice].jsonl keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
DURATION=${2:-10s}
BEAST=target/release/beast
BENCH=target/release/beast-bench
PG=postgres://postgres@127.0.0.1:5432/beast_metering_bench
PG_NICE=${PG_NICE:-0}
PG_CPU=${PG_CPU:-}       # e.g. 1: keep PostgreSQL's backends off the reactor's core
SINK=${SINK:-postgres}   # or sqlite (the embedded default), or journal (no database reached)
suffix=-$SINK
if [[ $PG_NICE == 1 ]]; then suffix=$suffix-pgnice; fi
if [[ $PG_CPU != "" ]]; then suffix=$suffix-pgcpu$PG_CPU; fi
OUT=bench/results/metering-$(date -u +%Y-%m-%d)$suffix.jsonl
rm -f "$OUT"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

psql -h 127.0.0.1 -U postgres -d postgres -qc 'DROP DATABASE IF EXISTS beast_metering_bench' 
psql -h 127.0.0.1 -U postgres -d postgres -qc 'CREATE DATABASE beast_metering_bench'
now=$(date +%s%3N)
printf '{"asset":"BTC","price":"97123.45","source":"coinbase-ws","ts":%s}\n{"asset":"ETH","price":"3512.5","source":"kraken-ws","ts":%s}\n' "$now" "$now" > "$work/prices.jsonl"

# serve MODE: starts beast with metering off, or on to PostgreSQL; waits for its ready line.
serve() {
  local mode=$1
  rm -rf "$work/data"
  local env=(BEAST_USAGE_METERING=false)
  if [[ $mode == on && $SINK == postgres ]]; then env=(DATABASE_URL=$PG BEAST_USAGE_METERING=true); fi
  if [[ $mode == on && $SINK == sqlite ]]; then env=(BEAST_USAGE_METERING=true); fi
  # journal: PostgreSQL configured but unreachable, so records are only journaled: the node's
  # own metering cost, without any database's.
  if [[ $mode == on && $SINK == journal ]]; then env=(DATABASE_URL=postgres://beast@127.0.0.1:1/none BEAST_USAGE_METERING=true); fi
  env "${env[@]}" BEAST_LOG=warn BEAST_DEMO_WALK=false taskset -c 0 $BEAST serve --feeds off --prices "$work/prices.jsonl" \
    --reactors 1 --pin true --bind 127.0.0.1 --beast-data-dir "$work/data" \
    --tcp-port-lpo 18080 --tcp-port-lrs 19090 --health-port-lpo 18081 --health-port-lrs 19091 \
    --udp-port-lpo 12679 --udp-port-lrs 12680 > "$work/ready" 2> "$work/stderr" &
  SERVER=$!
  for _ in $(seq 200); do grep -q ready "$work/ready" 2>/dev/null && return; sleep 0.05; done
  echo "beast did not start: $(cat "$work/stderr")" >&2; exit 1
}

metric() { curl -s localhost:18081/metrics | awk -v s="$1" '$1 == s { print $2 }'; }

# CPU seconds so far of beast's reactor threads, its side thread, and PostgreSQL's backends
# serving the bench database: "reactors side postgres".
cpu() {
  local reactors=0 side=0 pg=0 t
  for t in /proc/"$SERVER"/task/*; do
    local ticks; ticks=$(awk '{print $14 + $15}' "$t/stat")
    case $(cat "$t/comm") in
      beast-reactor*) reactors=$((reactors + ticks)) ;;
      beast-side) side=$((side + ticks)) ;;
    esac
  done
  for t in $(pgrep -f 'postgres: .*beast_metering_bench' || true); do
    pg=$((pg + $(awk '{print $14 + $15}' /proc/"$t"/stat)))
  done
  echo "$reactors $side $pg"
}

for rep in $(seq "$REPS"); do
  for mode in off on; do
    for form in http udp; do
      serve "$mode"
      if [[ $form == http ]]; then
        args=(http 127.0.0.1:18080 -c 64 -w 1)
      else
        args=(udp 127.0.0.1:12679 -c 4 -w 16)
      fi
      if [[ $PG_NICE == 1 ]]; then
        { pgrep -f 'postgres: .*beast_metering_bench' || true; } | xargs -r renice -n 19 -p >/dev/null
      fi
      if [[ $PG_CPU != "" ]]; then
        for pid in $(pgrep -f 'postgres: .*beast_metering_bench' || true); do taskset -pc "$PG_CPU" "$pid" >/dev/null; done
      fi
      read -r r0 s0 p0 < <(cpu)
      taskset -c 1 $BENCH "${args[@]}" -d "$DURATION" --warmup 1s -q --json "$work/r.json" 2>/dev/null
      read -r r1 s1 p1 < <(cpu)
      sink=$SINK
      if [[ $sink == journal ]]; then sink=postgres; fi
      delivered=$(metric "beast_usage_sink_delivered_total{sink=\"$sink\"}")
      backlog=$(metric "beast_usage_sink_backlog_bytes{sink=\"$sink\"}")
      rows=$(metric "beast_usage_sink_rows_written_total{sink=\"$sink\"}")
      kill -TERM "$SERVER"; wait "$SERVER" || true
      store=$( (cat "$work"/data/beast.db* 2>/dev/null || true) | wc -c)
      python3 - "$work/r.json" "$mode" "$form" "$rep" "${delivered:-0}" "${backlog:-0}" \
        "$((r1 - r0))" "$((s1 - s0))" "$((p1 - p0))" "${rows:-0}" "$store" "$DURATION" <<'EOF' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1]))
seconds = float(sys.argv[12].rstrip("s")) + 1  # the measured duration and the warm-up
print(json.dumps({"metering": sys.argv[2], "form": sys.argv[3], "rep": int(sys.argv[4]),
                  "rps": round(r["achieved_rps"]), "p99_us": r["latency_us"]["p99"],
                  "errors": sum(r["errors"].values()),
                  "sink_delivered": float(sys.argv[5]), "sink_backlog_bytes": float(sys.argv[6]),
                  # rows the sink wrote per second of load, and the embedded store's size after
                  "rows_per_s": round(float(sys.argv[10]) / seconds, 1),
                  "store_bytes": int(sys.argv[11]),
                  # CPU seconds over the run (warm-up included): reactor, side thread, database
                  "cpu_reactor_s": int(sys.argv[7]) / 100, "cpu_side_s": int(sys.argv[8]) / 100,
                  "cpu_postgres_s": int(sys.argv[9]) / 100}))
EOF
    done
  done
done
python3 - "$OUT" <<'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
for form in ("http", "udp"):
    ratios = []
    reps = sorted({r["rep"] for r in rows if r["form"] == form})
    for rep in reps:
        pick = {r["metering"]: r for r in rows if r["form"] == form and r["rep"] == rep}
        if "on" in pick and "off" in pick:
            ratios.append(pick["on"]["rps"] / pick["off"]["rps"])
    if ratios:
        on = [r for r in rows if r["form"] == form and r["metering"] == "on"]
        print(f"{form}: metering on / off = {statistics.median(ratios):.3f} (median of {len(ratios)} paired runs: {', '.join(f'{x:.3f}' for x in ratios)}); "
              f"rows written {statistics.median(r['rows_per_s'] for r in on):.1f}/s, store {max(r['store_bytes'] for r in on)} bytes")
EOF
