#!/usr/bin/env bash
# LRS reports per server core, and what report traffic costs the price path.
# usage: bench/reports.sh [REPS] [DURATION]   (release build first:
#        cargo build --release -p beast-engine -p beast-bench)
# The node serves 150 assets on three venues each, moved by the demo walk (a price history
# building up), one reactor pinned to CPU 0 with the price and side threads on the same core,
# usage metering on into the embedded store; the load is pinned to CPU 1. Per run:
#   - /reports/snapshot (every asset, JSON) and /reports/ohlc (BTC, 1 m, 100 rows, JSON),
#     closed loop, 16 connections: requests per second of the server's one core;
#   - /price?asset=BTC open loop at PRICE_RATE/s, each rep in four arms, interleaved: alone;
#     beside a second generator at REPORT_RATE/s asking for /price?asset=AS001 (the control: the
#     same load on the generator's CPU, next to nothing on the server's); beside the same
#     generator asking for /reports/snapshot (what reports cost the price path is this arm
#     against the control); beside a flood of refused /admin calls at ADMIN_RATE/s (no key:
#     401, counted, logged at most once per 10 s). Latency is from when each request was due
#     (coordinated omission corrected); service time from when it was sent, which leaves out
#     the generator's own lag on its shared CPU.
# Prints one JSON line per measurement; bench/results/reports-<date>.jsonl keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
DURATION=${2:-5s}
PRICE_RATE=${PRICE_RATE:-10000}   # the Go service's rate per vCPU
REPORT_RATE=${REPORT_RATE:-100}
ADMIN_RATE=${ADMIN_RATE:-1000}
# The whole server on CPU 0 (default), or SERVER_CPUS= (empty): only the reactor pinned to
# CPU 0, the price and side threads free to run beside the load.
SERVER_CPUS=${SERVER_CPUS-0}
BEAST=target/release/beast
BENCH=target/release/beast-bench
if [[ -n $SERVER_CPUS ]]; then placement=onecore; else placement=reactor-pinned; fi
# A new file per run: results already cited in RESULTS.md are never overwritten.
OUT=bench/results/reports-$(date -u +%Y-%m-%dT%H%M)-$placement.jsonl
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# 150 assets on three venues each, moved twice a second by the demo walk (900 ticks/s into
# the table and the history): no exchange simulator sharing the server's core.
python3 - "$work/prices.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as out:
    for i in range(150):
        asset = "BTC" if i == 0 else f"AS{i:03d}"
        base = 97123.45 if i == 0 else 0.5 + i * 1.37
        for n, source in enumerate(["coinbase-ws", "kraken-ws", "okx-ws"]):
            out.write(json.dumps({"asset": asset, "price": f"{base * (1 + 0.0003 * n):.4f}", "source": source}) + "\n")
EOF
BEAST_LOG=warn ${SERVER_CPUS:+taskset -c $SERVER_CPUS} $BEAST serve --feeds off --prices "$work/prices.jsonl" --demo-walk "${WALK:-true}" \
  --reactors 1 --pin true --bind 127.0.0.1 --admin-key bench-admin-key-0123456789abcdef \
  --beast-data-dir "$work/data" --tcp-port-lpo 18080 --tcp-port-lrs 19090 \
  --health-port-lpo 18081 --health-port-lrs 19091 --udp-port-lpo 12679 --udp-port-lrs 12680 \
  > "$work/ready" 2> "$work/stderr" &
for _ in $(seq 200); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$work/ready" || { echo "beast did not start: $(cat "$work/stderr")" >&2; exit 1; }
# Some candles behind the current one.
sleep 3
assets=$(curl -s 127.0.0.1:19090/reports/snapshot | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["rows"]))')
echo "snapshot rows: $assets" >&2

# run NAME ARGS...: one beast-bench run on CPU 1, its result as a JSON line.
run() {
  local name=$1; shift
  taskset -c 1 $BENCH http "$@" -d "$DURATION" --warmup 1s -q --json "$work/$name.json" >/dev/null
  python3 - "$work/$name.json" "$name" "$assets" <<'EOF' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"run": sys.argv[2], "assets": int(sys.argv[3]), "rps": round(r["achieved_rps"]),
                  "ok": r["ok"], "errors": r["errors"], "p50_us": r["latency_us"]["p50"],
                  "p99_us": r["latency_us"]["p99"], "p99_9_us": r["latency_us"]["p99_9"],
                  "service_p99_us": r["service_us"]["p99"], "lag_p99_us": r["generator_lag_us"]["p99"]}))
EOF
}

for rep in $(seq "$REPS"); do
  echo "rep $rep/$REPS" >&2
  run snapshot 127.0.0.1:19090 --path /reports/snapshot -c 16
  run ohlc 127.0.0.1:19090 --path '/reports/ohlc?asset=BTC&interval=1m&limit=100' -c 16
  run price-alone 127.0.0.1:19090 -a BTC -r "$PRICE_RATE" -c 16
  for arm in cheap reports admin; do
    case $arm in
      cheap) path='/price?asset=AS001'; rate=$REPORT_RATE ;;
      reports) path=/reports/snapshot; rate=$REPORT_RATE ;;
      admin) path=/admin/feed-status; rate=$ADMIN_RATE ;;
    esac
    taskset -c 1 $BENCH http 127.0.0.1:19090 --path "$path" -r "$rate" -c 4 \
      -d "$(( ${DURATION%s} + 3 ))s" --warmup 0s -q --json "$work/background.json" >/dev/null &
    background=$!
    sleep 1
    run "price-with-$arm" 127.0.0.1:19090 -a BTC -r "$PRICE_RATE" -c 16
    wait "$background"
  done
done
# The admin flood's refusals: all counted, a handful of log lines.
echo "admin refusals counted: $(curl -s 127.0.0.1:18081/metrics | awk '/^beast_admin_denied_total/ {print $2}')," \
  "log lines about them: $(grep -c 'admin calls refused' "$work/stderr" || true)" >&2

# Turns longer than the stall threshold (10 ms) over the whole run, and the longest turn.
curl -s 127.0.0.1:18081/metrics | grep -E '^beast_reactor_(stalls_total|loop_max_turn)' >&2 || true

python3 - "$OUT" <<'EOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
def series(name, field):
    return [r[field] for r in rows if r["run"] == name]
def med(name, field):
    return statistics.median(series(name, field))
def paired(arm, field):
    # Each rep's arm against the same rep's control: the VM's drift between reps cancels.
    return round(statistics.median(a / c for a, c in zip(series(arm, field), series("price-with-cheap", field))), 3)
summary = {
    "snapshot_rps_per_core": med("snapshot", "rps"),
    "ohlc_rps_per_core": med("ohlc", "rps"),
}
for arm in ["alone", "with-cheap", "with-reports", "with-admin"]:
    for field in ["p50_us", "p99_us", "service_p99_us", "lag_p99_us"]:
        summary[f"price_{arm}_{field}"] = med(f"price-{arm}", field)
for arm in ["with-reports", "with-admin"]:
    for field in ["p99_us", "service_p99_us"]:
        summary[f"ratio_{arm}_to_control_{field}"] = paired(f"price-{arm}", field)
print(json.dumps(summary))
EOF
