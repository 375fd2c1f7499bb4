#!/usr/bin/env bash
# Soak (not CI): one node with the simulated feeds, metering to PostgreSQL and SQS, under half
# its knee load for SOAK_MINUTES (default 30). The knee is measured first (a closed-loop HTTP run
# of 20 s: the rate the node sustains), then the load runs open-loop at half of it, one minute
# at a time, and every minute the script samples the node's RSS, open descriptors, journal
# size, the minute's /price p99 (from the load generator, measured from each request's intended
# send time) and BTC's age. It writes bench/results/soak-<time>/ with samples.tsv, one SVG plot
# per series and report.md, which states each series' slope (least squares, per hour) and
# whether it is flat.
#
#   scripts/soak.sh                       # 30 minutes, release build
#   SOAK_MINUTES=5 scripts/soak.sh        # a short one
#
# Needs what scripts/test.sh installs (PostgreSQL's binaries, moto_server). PostgreSQL: a private
# cluster in the run's folder (or SOAK_DATABASE_URL); SQS: a private moto_server (or
# SOAK_SQS_QUEUE_URL with AWS credentials in the environment). The server's reactor is pinned to
# CPU 0 and the load to the last CPU when the machine has more than one.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${SOAK_MINUTES:-30}
PROFILE=${SOAK_PROFILE:-release}
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="bench/results/soak-$stamp"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${pg_data:-}" ]; then as_postgres pg_ctl -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

as_postgres() {
  local bin=$1; shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pg_bin/$bin" "$@"; else "$pg_bin/$bin" "$@"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # seconds, command...
  local limit=$1; shift
  for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "soak: timed out waiting for: $*" >&2; return 1
}

echo "== build ($PROFILE)"
cargo build --locked --profile "$PROFILE" -p beast-engine -p beast-bench
dir=target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
beast=$dir/beast bench=$dir/beast-bench

echo "== services"
database=${SOAK_DATABASE_URL:-}
if [ -z "$database" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pg_data="$work/pg" pg_port=$(free_port)
  mkdir -p "$pg_data"; [ "$(id -u)" = 0 ] && chown postgres "$work" "$pg_data"
  as_postgres initdb -D "$pg_data" -U postgres --auth=trust >/dev/null
  as_postgres pg_ctl -D "$pg_data" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -w start >/dev/null
  as_postgres createdb -h 127.0.0.1 -p "$pg_port" -U postgres beast
  database="postgres://postgres@127.0.0.1:$pg_port/beast"
fi
queue=${SOAK_SQS_QUEUE_URL:-}
if [ -z "$queue" ]; then
  moto_port=$(free_port)
  moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 & pids+=($!)
  wait_for 30 curl -fs "http://127.0.0.1:$moto_port/moto-api/"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
  queue=$(python3 -c "import boto3; print(boto3.client('sqs', endpoint_url='http://127.0.0.1:$moto_port').create_queue(QueueName='soak.fifo', Attributes={'FifoQueue': 'true'})['QueueUrl'])")
fi

echo "== node"
# The reactor pinned to CPU 0 (its default), the load to the last CPU.
http_port=$(free_port) health_port=$(free_port)
SQS_USAGE_LOG_QUEUE_URL="$queue" BEAST_LOG=warn "$beast" serve --io epoll --feeds sim --reactors 1 \
  --bind 127.0.0.1 --tcp-port-lpo "$http_port" --health-port-lpo "$health_port" --udp-port-lpo 0 \
  --tcp-port-lrs 0 --udp-port-lrs 0 --health-port-lrs 0 --health-port-webhook 0 \
  --beast-data-dir "$work/data" --database-url "$database" >"$work/ready.json" 2>"$out/server.log" &
server=$!; pids+=("$server")
wait_for 60 curl -fs "http://127.0.0.1:$http_port/price?asset=BTC"
target=127.0.0.1:$http_port
pin=(); [ "$(nproc)" -gt 1 ] && pin=(--pin)

echo "== knee"
"$bench" http "$target" -c 64 -d 20s -q "${pin[@]}" --json "$out/knee.json" >/dev/null
rate=$(python3 -c "import json; print(max(1, int(json.load(open('$out/knee.json'))['achieved_rps'] / 2)))")
echo "knee $(python3 -c "import json; print(int(json.load(open('$out/knee.json'))['achieved_rps']))") req/s; soaking at $rate req/s for $MINUTES min"

echo "== soak"
printf 'minute\trss_mb\tfds\tjournal_mb\tp99_ms\tbtc_age_s\tok\tdelivered_pg\tdelivered_sqs\n' > "$out/samples.tsv"
metric() { curl -fs "http://127.0.0.1:$health_port/metrics" | awk -v s="$1" '$1 == s { print $2 }'; }
for minute in $(seq 1 "$MINUTES"); do
  "$bench" http "$target" -r "$rate" -c 64 -d 60s --warmup 0s -q "${pin[@]}" --json "$work/minute.json" >/dev/null
  rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status")
  fds=$(ls "/proc/$server/fd" | wc -l)
  journal=$(du -sb "$work/data/usage" | awk '{ printf "%.2f", $1 / 1048576 }')
  read -r p99 ok < <(python3 -c "import json; r = json.load(open('$work/minute.json')); print(r['latency_us']['p99'] / 1000, r['ok'])")
  age=$(curl -fs "http://$target/price?asset=BTC" | python3 -c "import json, sys; print(json.load(sys.stdin)['age_ms'] / 1000)")
  pg=$(metric 'beast_usage_sink_delivered_total{sink="postgres"}')
  sqs=$(metric 'beast_usage_sink_delivered_total{sink="sqs"}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$minute" "$rss" "$fds" "$journal" "$p99" "$age" "$ok" "$pg" "$sqs" | tee -a "$out/samples.tsv"
done

echo "== report"
python3 - "$out" "$rate" "$MINUTES" <<'PY'
import csv, sys
out, rate, minutes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(f"{out}/samples.tsv"), delimiter="\t"))
series = [("rss_mb", "RSS", "MB"), ("fds", "open descriptors", ""), ("journal_mb", "journal", "MB"),
          ("p99_ms", "/price p99", "ms"), ("btc_age_s", "BTC age", "s")]

def slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var

def svg(name, title, unit, xs, ys):
    w, h, pad = 640, 240, 40
    lo, hi = min(ys), max(ys)
    hi = hi if hi > lo else lo + 1
    px = lambda x: pad + (x - xs[0]) / max(1, xs[-1] - xs[0]) * (w - 2 * pad)
    py = lambda y: h - pad - (y - lo) / (hi - lo) * (h - 2 * pad)
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    with open(f"{out}/{name}.svg", "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">'
                f'<rect width="100%" height="100%" fill="white"/>'
                f'<text x="{pad}" y="20">{title} ({unit or "count"}) by minute</text>'
                f'<line x1="{pad}" y1="{h-pad}" x2="{w-pad}" y2="{h-pad}" stroke="black"/>'
                f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h-pad}" stroke="black"/>'
                f'<text x="4" y="{py(hi)+4:.1f}">{hi:g}</text><text x="4" y="{py(lo)+4:.1f}">{lo:g}</text>'
                f'<text x="{w-pad-20}" y="{h-pad+16}">{xs[-1]:g} min</text>'
                f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{points}"/></svg>')

lines = [f"# Soak, {minutes} min at {rate} req/s (half the knee)", "",
         "| series | first | last | min | max | slope per hour | flat |", "|---|---|---|---|---|---|---|"]
xs = [float(r["minute"]) for r in rows]
for key, title, unit in series:
    ys = [float(r[key]) for r in rows]
    # After the first minute (start-up fills caches and pools).
    sx, sy = (xs[1:], ys[1:]) if len(xs) > 2 else (xs, ys)
    per_hour = slope(sx, sy) * 60
    spread = max(sy) - min(sy)
    mean = sum(sy) / len(sy)
    # Flat: the hour's trend is within 5 % of the mean (or within the minute-to-minute spread).
    flat = abs(per_hour) <= max(0.05 * abs(mean), spread)
    svg(key, title, unit, xs, ys)
    lines.append(f"| {title} | {ys[0]:g} | {ys[-1]:g} | {min(ys):g} | {max(ys):g} | {per_hour:+.3g} {unit}/h | {'yes' if flat else '**no**'} |")
ok = sum(int(r["ok"]) for r in rows)
lines += ["", f"Answered: {ok} requests; usage delivered to PostgreSQL {rows[-1]['delivered_pg']}, to SQS {rows[-1]['delivered_sqs']} (cumulative at the last sample).",
          "", "Plots: " + ", ".join(f"[{k}]({k}.svg)" for k, _, _ in series) + ". Samples: [samples.tsv](samples.tsv)."]
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "report: $out/report.md"
