#!/usr/bin/env python3
"""HTTPS receiver for the push tests: verifies every delivery with the PyPI `standardwebhooks`
library, once per secret listed in SECRETS_FILE (one a line, re-read at every request), and
prints one JSON line per request on stdout. The path picks the answer:

  /ok           200
  /gone         410
  /flaky/N      503 with Retry-After: 1 for the first N requests, then 200
  /stall        waits 20 s, then 200

Usage: webhook_receiver.py CERT KEY SECRETS_FILE  (prints {"port": P} first)
"""
import json
import ssl
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

CERT, KEY, SECRETS = sys.argv[1], sys.argv[2], sys.argv[3]
counts = {}
lock = threading.Lock()
out = threading.Lock()


def secrets():
    with open(SECRETS) as f:
        return [line.strip() for line in f if line.strip()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = []
        for secret in secrets():
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except Exception:
                verified.append(False)
        try:
            data = json.loads(body)["data"]
        except Exception:
            data = {}
        with lock:
            n = counts.get(self.path, 0)
            counts[self.path] = n + 1
        status, extra = 200, {}
        if self.path == "/gone":
            status = 410
        elif self.path.startswith("/flaky/") and n < int(self.path.split("/")[2]):
            status, extra = 503, {"Retry-After": "1"}
        now_ms = int(time.time() * 1000)
        try:
            sent = datetime.fromisoformat(json.loads(body)["timestamp"].replace("Z", "+00:00"))
            lag_ms = now_ms - int(sent.timestamp() * 1000)
        except Exception:
            lag_ms = None
        record = {
            "path": self.path,
            "id": headers.get("webhook-id"),
            "seq": data.get("seq"),
            "trigger": data.get("trigger"),
            "prices": len(data.get("prices", [])),
            "signatures": len(headers.get("webhook-signature", "").split()),
            "verified": verified,
            "status": status,
            "received_ms": now_ms,
            "lag_ms": lag_ms,
        }
        # Printed on arrival: a stalled answer is still seen at once.
        with out:
            print(json.dumps(record), flush=True)
        if self.path == "/stall":
            time.sleep(20)
        reply = b'{"ok":true}'
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
