#!/usr/bin/env python3
"""Beast against the reference servers, same load, same run, same machine.

HTTP: wrk against nginx (fixed string) and `beast serve` (GET /price?asset=BTC).
UDP:  udpload against udpsrv (fixed reply) and `beast serve` (text request, padded to the
      reply size because an unauthenticated reply may not exceed its request).

For each run it records requests/s, wrk's or udpload's p50/p99, and the CPU the server used
(utime+stime of its process tree, from /proc), so the figure compared is requests per
server-core-second: client and server share the two cores. Configurations alternate
server by server, rep by rep, so drift spreads over both; medians are reported.

usage: compare_peers.py --peers /tmp/peers --beast target/release/beast [--reps 3]
                        [--duration 10] [--only SUBSTR] [--out results.jsonl]
Run ../shared/peers/setup.sh (in a writable copy) first: it installs nginx and wrk and builds
udpsrv and udpload. Every process it starts listens on 127.0.0.1 only and is stopped at the end.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
BEAST_HTTP, BEAST_UDP, NGINX_PORT, UDPSRV_PORT = 18090, 12690, 18091, 12691
PAYLOAD = "BTC" + " " * 125  # 128 bytes: room for the ~90-byte JSON reply


def tree_cpu(pid):
    """CPU seconds used so far by pid and its children (nginx workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] = ppid, fields[11] = utime, fields[12] = stime (after the comm field)
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / HZ


def wait_port(port, proto, deadline=10.0):
    flag = "-lun" if proto == "udp" else "-ltn"
    end = time.time() + deadline
    while time.time() < end:
        out = subprocess.run(["ss", "-H", flag, f"sport = :{port}"], capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise SystemExit(f"port {port}/{proto} did not open")


def start_server(kind, args, pin):
    taskset = ["taskset", "-c", "0"] if pin else []
    if kind == "beast":
        cmd = taskset + [args.beast, "serve", "--bind", "127.0.0.1", "--prices", args.prices,
                         "--tcp-port-lpo", str(BEAST_HTTP), "--udp-port-lpo", str(BEAST_UDP),
                         "--tcp-port-lrs", "0", "--udp-port-lrs", "0", "--health-port-lpo", "0",
                         "--health-port-lrs", "0", "--demo-walk", "--io", args.io,
                         # Sharing cores with the load generator, pinned reactors cannot get out
                         # of its way; the peers are not pinned either. Pinned runs use taskset.
                         "--pin", "true" if pin else "false"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(BEAST_HTTP, "tcp")
        return proc, {"http": BEAST_HTTP, "udp": BEAST_UDP}
    if kind == "nginx":
        prefix = os.path.join(args.peers, "run", "nginx")
        os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
        conf = open(os.path.join(args.peers, "nginx", "nginx.conf.in")).read()
        conf = conf.replace("@PORT@", str(NGINX_PORT)).replace("@PREFIX@", prefix)
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        cmd = taskset + ["nginx", "-p", prefix + "/", "-e", os.path.join(prefix, "error.log"),
                         "-c", os.path.join(prefix, "nginx.conf"), "-g", "daemon off;"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(NGINX_PORT, "tcp")
        return proc, {"http": NGINX_PORT}
    if kind == "udpsrv":
        threads = ["-t", "1"] if pin else []
        cmd = taskset + [os.path.join(args.peers, "udpsrv", "udpsrv"), "-p", str(UDPSRV_PORT)] + threads
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(UDPSRV_PORT, "udp")
        return proc, {"udp": UDPSRV_PORT}
    raise ValueError(kind)


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def client_cmd(cfg, port, args):
    pin = ["taskset", "-c", "1"] if cfg["pin"] else []
    if cfg["proto"] == "http":
        url = f"http://127.0.0.1:{port}/price?asset=BTC"
        if cfg["pipeline"]:
            return pin + ["wrk", "-t1", f"-c{cfg['conns']}", f"-d{args.duration}s", "-s",
                          os.path.join(args.peers, "lua", "pipeline.lua"), url, "--", "16"]
        return pin + ["wrk", "-t1", f"-c{cfg['conns']}", f"-d{args.duration}s", "--latency", "-s",
                      os.path.join(args.peers, "lua", "report.lua"), url]
    return pin + [os.path.join(args.peers, "udpload"), "-p", str(port), "-t", str(cfg["threads"]),
                  "-c", str(cfg["sockets"]), "-w", str(cfg["window"]), "-d", str(args.duration),
                  "-P", PAYLOAD]


def parse(cfg, out):
    if cfg["proto"] == "http":
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        m = re.search(r"PCTL p50=([\d.]+) p90=[\d.]+ p99=([\d.]+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return dict(rps=rps, p50=float(m.group(1)) if m else None, p99=float(m.group(2)) if m else None,
                    errors=int(errors.group(1)) if errors else 0)
    rps = float(re.search(r"rps=([\d.]+)", out).group(1))
    m = re.search(r"p50=([\d.]+) p90=[\d.]+ p99=([\d.]+)", out)
    bad = re.search(r"bad=(\d+)", out)
    lost = re.search(r"lost=(\d+)", out)
    return dict(rps=rps, p50=float(m.group(1)), p99=float(m.group(2)),
                errors=int(bad.group(1)) + int(lost.group(1)))


CONFIGS = [
    dict(id="http plain, shared, wrk -t1 -c64", proto="http", pin=False, pipeline=False, conns=64, peer="nginx"),
    dict(id="http plain, pinned (srv cpu0, wrk cpu1), -t1 -c64", proto="http", pin=True, pipeline=False, conns=64, peer="nginx"),
    dict(id="http pipelined x16, shared, -t1 -c64", proto="http", pin=False, pipeline=True, conns=64, peer="nginx"),
    dict(id="udp shared t1/s4/w16", proto="udp", pin=False, threads=1, sockets=4, window=16, peer="udpsrv"),
    dict(id="udp shared t2/s4/w64", proto="udp", pin=False, threads=2, sockets=4, window=64, peer="udpsrv"),
    dict(id="udp pinned t1/s4/w16 (srv cpu0, cli cpu1)", proto="udp", pin=True, threads=1, sockets=4, window=16, peer="udpsrv"),
]


def run_one(cfg, server, args):
    proc, ports = start_server(server, args, cfg["pin"])
    try:
        port = ports[cfg["proto"]]
        # a short warm-up outside the measurement
        warm = dict(args.__dict__)
        subprocess.run(client_cmd(cfg, port, argparse.Namespace(**{**warm, "duration": 1})),
                       capture_output=True, text=True, timeout=30)
        cpu0, t0 = tree_cpu(proc.pid), time.time()
        res = subprocess.run(client_cmd(cfg, port, args), capture_output=True, text=True,
                             timeout=args.duration + 30)
        cpu1, t1 = tree_cpu(proc.pid), time.time()
        parsed = parse(cfg, res.stdout)
        cores = (cpu1 - cpu0) / (t1 - t0)
        parsed.update(server=server, config=cfg["id"], server_cores=round(cores, 3),
                      per_core=round(parsed["rps"] / cores) if cores > 0 else None)
        return parsed
    finally:
        stop_server(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", required=True)
    ap.add_argument("--beast", required=True)
    ap.add_argument("--io", default="uring")
    ap.add_argument("--prices", default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="compare-peers.jsonl")
    args = ap.parse_args()
    if args.prices is None:
        args.prices = "/tmp/beast-bench-prices.jsonl"
        with open(args.prices, "w") as f:
            f.write('{"asset":"BTC","price":"97123.45","source":"coinbase-ws"}\n')
    runs = []
    configs = [c for c in CONFIGS if args.only in c["id"]]
    for rep in range(args.reps):
        for cfg in configs:
            for server in (cfg["peer"], "beast") if rep % 2 == 0 else ("beast", cfg["peer"]):
                r = run_one(cfg, server, args)
                r["rep"] = rep
                runs.append(r)
                print(json.dumps(r), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print()
    print("| config | server | req/s | p50 µs | p99 µs | server cores | req/s per server core | beast / peer (per core) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        med = {}
        for server in (cfg["peer"], "beast"):
            rs = [r for r in runs if r["config"] == cfg["id"] and r["server"] == server]
            med[server] = {k: statistics.median([r[k] for r in rs if r[k] is not None])
                           for k in ("rps", "p50", "p99", "server_cores", "per_core")}
        ratio = med["beast"]["per_core"] / med[cfg["peer"]]["per_core"]
        for server in (cfg["peer"], "beast"):
            m = med[server]
            print(f"| {cfg['id']} | {server} | {m['rps']:,.0f} | {m['p50']:.0f} | {m['p99']:.0f} | "
                  f"{m['server_cores']:.2f} | {m['per_core']:,.0f} | {ratio:.2f}x |" if server == "beast" else
                  f"| {cfg['id']} | {server} | {m['rps']:,.0f} | {m['p50']:.0f} | {m['p99']:.0f} | "
                  f"{m['server_cores']:.2f} | {m['per_core']:,.0f} | |")


if __name__ == "__main__":
    main()
