#!/usr/bin/env python3
"""The push node under load: N HTTPS and M UDP subscriptions on a 1 s interval to local
receivers (nginx over TLS on several ports for HTTPS, UDP sockets in this process), plus a few
move-triggered subscriptions of each kind for price-change-to-delivery latency.

Measures, over a steady window: deliveries per second by protocol, the CPU the push node uses
per delivery (/proc utime+stime of the process), and latency:
  - UDP, at the receiver: arrival minus the payload's timestamp (interval: when the delivery
    was made; move: the newest price's exchange time, set when the price changed);
  - HTTPS, from the node's own histogram (due time or price change to the 2xx received).

Usage: bench/push.py [--https 1000] [--udp 10000] [--seconds 20] [--beast target/release/beast]
Needs nginx and openssl. Prints a Markdown block for bench/RESULTS.md and a JSON line.
"""
import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime

p = argparse.ArgumentParser()
p.add_argument("--https", type=int, default=1000)
p.add_argument("--udp", type=int, default=10000)
p.add_argument("--moves", type=int, default=20, help="move subscriptions of each protocol")
p.add_argument("--seconds", type=int, default=20)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--https-ports", type=int, default=10)
p.add_argument("--udp-sockets", type=int, default=10)
p.add_argument("--beast", default="target/release/beast")
args = p.parse_args()
beast = os.path.abspath(args.beast)
work = tempfile.mkdtemp(prefix="beast-push-bench-")
env = dict(PATH=os.environ["PATH"])


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, cwd=work, capture_output=True, text=True, **kw)


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# A CA and a certificate for 127.0.0.1 signed by it.
sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca")
sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1")
with open(os.path.join(work, "ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
sh("openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext")

# nginx: one TLS port per endpoint, 200 to every POST.
https_ports = [free_port() for _ in range(args.https_ports)]
listens = "\n".join(f"    listen 127.0.0.1:{p} ssl;" for p in https_ports)
with open(os.path.join(work, "nginx.conf"), "w") as f:
    f.write(f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{
{listens}
    ssl_certificate {work}/leaf.pem;
    ssl_certificate_key {work}/leaf.key;
    location / {{ return 200 '{{"ok":true}}'; }}
  }}
}}
""")
nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-g", "daemon off;"], cwd=work)

# UDP receivers.
udp_socks = []
for _ in range(args.udp_sockets):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    udp_socks.append(s)
counting = threading.Event()
lock = threading.Lock()
udp_count = [0]
udp_lag = {"interval": [], "move": []}
stop = threading.Event()


def rfc3339_ms(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def receive(sock):
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            data = sock.recv(2048)
        except socket.timeout:
            continue
        now = time.time() * 1000
        if not counting.is_set():
            continue
        try:
            doc = json.loads(data)
            trigger = doc["data"]["trigger"]
            if trigger == "move":
                since = max(p.get("ts", 0) for p in doc["data"]["prices"])
            else:
                since = rfc3339_ms(doc["timestamp"])
        except Exception:
            continue
        with lock:
            udp_count[0] += 1
            udp_lag[trigger].append(now - since)


threads = [threading.Thread(target=receive, args=(s,), daemon=True) for s in udp_socks]
for t in threads:
    t.start()

# The store: one subscription through the CLI (migrations, the key), the rest in one
# transaction (11 000 CLI runs would take minutes; the rows are the same).
sh(f"{beast} keys create --tier partner", env=env)
sh(f"{beast} subscriptions create --owner 1 --target udp://{udp_socks[0].getsockname()[0]}:{udp_socks[0].getsockname()[1]} --assets BTC --every-s 1",
   env=dict(env, WEBHOOK_ALLOW_NETS="127.0.0.0/8"))
db = sqlite3.connect(os.path.join(work, "data", "beast.db"))
template = db.execute("SELECT secret FROM subscriptions WHERE id = 1").fetchone()[0]
rows = []
now_ms = int(time.time() * 1000)
assets = "BTC,ETH"


def row(target, every, move):
    return (1, target, assets, every, move, 1000 if move is None else 100, "json", template, None, 0,
            "active", "", now_ms, now_ms, 0)


for i in range(args.udp - 1):
    s = udp_socks[i % len(udp_socks)].getsockname()
    rows.append(row(f"udp://{s[0]}:{s[1]}", 1, None))
for i in range(args.https):
    rows.append(row(f"https://127.0.0.1:{https_ports[i % len(https_ports)]}/in", 1, None))
for i in range(args.moves):
    s = udp_socks[i % len(udp_socks)].getsockname()
    rows.append(row(f"udp://{s[0]}:{s[1]}", None, 1))
    rows.append(row(f"https://127.0.0.1:{https_ports[i % len(https_ports)]}/in", None, 1))
db.executemany(
    "INSERT INTO subscriptions (owner_key_id, target, assets, every_s, move_bps, min_gap_ms, format, secret, previous_secret, previous_until_ms, state, reason, created_ms, updated_ms, seq_floor) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    rows)
db.execute("UPDATE store_versions SET version = version + 1 WHERE name = 'subscriptions'")
db.commit()
db.close()

prices = os.path.join(work, "prices.jsonl")
with open(prices, "w") as f:
    f.write('{"asset":"BTC","price":"97123.45","source":"coinbase-ws"}\n{"asset":"ETH","price":"3512.50","source":"kraken-ws"}\n')
health = free_port()
node = subprocess.Popen(
    [beast, "serve", "--feeds", "off", "--prices", prices, "--demo-walk", "true", "--bind", "127.0.0.1",
     "--reactors", "1", "--pin", "false", "--health-port-webhook", str(health)],
    cwd=work, stdout=subprocess.PIPE, stderr=open(os.path.join(work, "beast.log"), "w"),
    env=dict(env, SERVER_TYPE="WEBHOOK_SERVER", WEBHOOK_ALLOW_NETS="127.0.0.0/8",
             WEBHOOK_CA_FILE=os.path.join(work, "ca.pem"), BEAST_LOG="warn"))
ready = node.stdout.readline()
if not ready:
    nginx.terminate()
    sys.exit("beast did not start: see " + os.path.join(work, "beast.log"))


def metrics():
    return urllib.request.urlopen(f"http://127.0.0.1:{health}/metrics", timeout=5).read().decode()


def metric(text, series):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(series + " "):
            total += float(line.split()[-1])
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_quantile(text, labels, q):
    buckets = []
    for line in text.splitlines():
        m = re.match(r'beast_push_latency_seconds_bucket\{' + re.escape(labels) + r',le="([^"]+)"\} (\S+)', line)
        if m:
            buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= q * total:
            if bound == float("inf"):
                return prev_bound * 1000
            # linear within the bucket
            share = (q * total - prev_count) / max(count - prev_count, 1)
            return (prev_bound + (bound - prev_bound) * share) * 1000
        prev_bound, prev_count = bound, count
    return None


def diff_hist(a, b, labels):
    """Bucket counts of b minus a, as Prometheus text for histogram_quantile."""
    out = []
    for line in b.splitlines():
        m = re.match(r'(beast_push_latency_seconds_bucket\{' + re.escape(labels) + r',le="[^"]+"\}) (\S+)', line)
        if m:
            before = metric(a, m.group(1))
            out.append(f"{m.group(1)} {float(m.group(2)) - before}")
    return "\n".join(out)


time.sleep(args.warmup)  # a bench may wait: the subscriptions load and settle
counting.set()
m0, c0, t0 = metrics(), cpu_seconds(node.pid), time.time()
time.sleep(args.seconds)
m1, c1, t1 = metrics(), cpu_seconds(node.pid), time.time()
counting.clear()
elapsed = t1 - t0
sent = {p: metric(m1, f'beast_push_deliveries_total{{protocol="{p}",outcome="{o}"}}') - metric(m0, f'beast_push_deliveries_total{{protocol="{p}",outcome="{o}"}}')
        for p, o in [("udp", "sent"), ("https", "delivered")]}
dropped = metric(m1, 'beast_push_deliveries_total{protocol="udp",outcome="dropped"}') - metric(m0, 'beast_push_deliveries_total{protocol="udp",outcome="dropped"}')
failed = sum(metric(m1, f'beast_push_deliveries_total{{protocol="https",outcome="{o}"}}') - metric(m0, f'beast_push_deliveries_total{{protocol="https",outcome="{o}"}}') for o in ["failed", "gave_up", "superseded"])
deliveries = sent["udp"] + sent["https"]
cpu = c1 - c0


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


with lock:
    lag = {k: list(v) for k, v in udp_lag.items()}
    received = udp_count[0]
result = {
    "https_subscriptions": args.https, "udp_subscriptions": args.udp, "move_subscriptions_each": args.moves,
    "seconds": round(elapsed, 1),
    "udp_sent_per_s": round(sent["udp"] / elapsed), "udp_received_per_s": round(received / elapsed),
    "udp_dropped": dropped,
    "https_delivered_per_s": round(sent["https"] / elapsed), "https_failed": failed,
    "cpu_cores": round(cpu / elapsed, 3), "cpu_us_per_delivery": round(cpu / max(deliveries, 1) * 1e6, 1),
    "udp_interval_lag_ms": {"p50": pct(lag["interval"], 0.5), "p99": pct(lag["interval"], 0.99)},
    "udp_move_lag_ms": {"p50": pct(lag["move"], 0.5), "p99": pct(lag["move"], 0.99)},
    "https_interval_ms": {q: histogram_quantile(diff_hist(m0, m1, 'protocol="https",trigger="interval"'), 'protocol="https",trigger="interval"', v) for q, v in [("p50", 0.5), ("p99", 0.99)]},
    "https_move_ms": {q: histogram_quantile(diff_hist(m0, m1, 'protocol="https",trigger="move"'), 'protocol="https",trigger="move"', v) for q, v in [("p50", 0.5), ("p99", 0.99)]},
}
stop.set()
node.send_signal(signal.SIGTERM)
node.wait(timeout=30)
nginx.send_signal(signal.SIGQUIT)
nginx.wait(timeout=30)
print(json.dumps(result))
