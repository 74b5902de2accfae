#!/usr/bin/env python3
"""Tiny OAuth2 token-introspection endpoint (RFC 7662) for Dovecot's oauth2
passdb in ticketd's test mail stack (started by mailstack.sh).

Dovecot 2.3 (introspection_mode = post) POSTs `token=<access token>` and
expects a JSON object.  A token listed in --tokens-file (one per line,
re-read on every request, initially `good-token`) is answered with
{"active": true, "username": "oauth@example.test", ...}; any other token with
{"active": false} (RFC 7662), which Dovecot reports as an ordinary
authentication failure.  Dovecot sends only the token, so the username
cannot be the real one: the passdb compares domains only
(username_format = %Ld), which makes one token valid for every
user@example.test.

GET /stats returns {"requests": N, "accepted": N, "rejected": N}.
"""
import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

USERNAME = "oauth@example.test"
stats = {"requests": 0, "accepted": 0, "rejected": 0}
lock = threading.Lock()


def load_tokens(path):
    try:
        with open(path) as f:
            return {line.strip() for line in f if line.strip() and not line.startswith("#")}
    except OSError:
        return set()


class Handler(BaseHTTPRequestHandler):
    server_version = "mailstack-introspect/1"
    protocol_version = "HTTP/1.1"

    def _send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        token = (parse_qs(raw).get("token") or [""])[0]
        if not token:  # also accept "Authorization: Bearer" (introspection_mode = auth)
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        ok = bool(token) and token in load_tokens(self.server.tokens_file)
        with lock:
            stats["requests"] += 1
            stats["accepted" if ok else "rejected"] += 1
        if ok:
            self._send(200, {"active": True, "username": USERNAME,
                             "scope": "https://mail.google.com/", "token_type": "Bearer",
                             "client_id": "ticketd-tests"})
        else:
            self._send(200, {"active": False})

    def do_GET(self):
        if self.path.startswith("/stats"):
            with lock:
                self._send(200, dict(stats))
        else:
            self.do_POST()

    def log_message(self, fmt, *args):
        sys.stderr.write("introspect: %s\n" % (fmt % args))
        sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens-file", required=True)
    ap.add_argument("--pid-file")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.tokens_file = a.tokens_file
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    if a.pid_file:  # written only once the port is bound: readiness signal
        tmp = a.pid_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, a.pid_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
