#!/usr/bin/python3
"""A minimal HTTPS BitTorrent tracker for tests: Python's http.server wrapped with ssl.

    https_tracker.py --cert PEM --key PEM --listen 127.0.0.1:0 [--peer IP:PORT]...
                     [--redirect PATH=URL]... [--timeout SECS]

Serves `GET /announce?...` (BEP 3) over TLS with the given certificate. Every announce is
answered with a compact reply (BEP 23) listing the `--peer` addresses, and an interval of
1800 s. `GET PATH?QUERY` for a `--redirect PATH=URL` is answered `302 Found` with
`Location: URL?QUERY` (`{port}` in URL is replaced by the port listened on). Anything else gets
404.

Stdout, one flushed line each:
    https: IP:PORT                                   once listening
    announce info_hash=<40 hex> port=<n> event=<e> from=<ip>
                                                     every announce received over TLS
    redirect <path>                                  every redirect answered
    tls-error <message>                              every failed TLS handshake

Exits 0 on SIGTERM/SIGINT, or by itself after --timeout seconds (default 120), so that it never
outlives a test that forgot it.
"""

import argparse
import http.server
import ipaddress
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import urllib.parse


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, str):
        return bencode(value.encode())
    if isinstance(value, dict):
        out = b"d"
        for k in sorted(value):
            out += bencode(k) + bencode(value[k])
        return out + b"e"
    raise TypeError(type(value))


def raw_query(query):
    """The query's parameters with raw byte values (info_hash is binary)."""
    out = {}
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        out[urllib.parse.unquote(key)] = urllib.parse.unquote_to_bytes(value)
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    peers = b""
    redirects = {}

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path in self.redirects:
            say("redirect %s" % path)
            self.send_response(302)
            self.send_header("Location", self.redirects[path] + "?" + query)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path != "/announce":
            self.reply(404, b"not found")
            return
        params = raw_query(query)
        info_hash = params.get("info_hash", b"")
        if len(info_hash) != 20:
            self.reply(400, bencode({"failure reason": "bad info_hash"}))
            return
        say(
            "announce info_hash=%s port=%s event=%s from=%s"
            % (
                info_hash.hex(),
                params.get("port", b"").decode("ascii", "replace"),
                params.get("event", b"").decode("ascii", "replace") or "none",
                self.client_address[0],
            )
        )
        self.reply(200, bencode({"interval": 1800, "peers": self.peers}))

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, context):
        super().__init__(addr, Handler)
        self.context = context

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(10)
        try:
            tls = self.context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            say("tls-error %s" % e)
            sock.close()
            raise
        return tls, addr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--redirect", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    peers = b""
    for p in args.peer:
        ip, _, port = p.rpartition(":")
        peers += ipaddress.IPv4Address(ip).packed + struct.pack(">H", int(port))
    Handler.peers = peers

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    host, _, port = args.listen.rpartition(":")
    server = Server((host, int(port)), context)

    def stop(*_):
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.timeout, stop)
    timer.daemon = True
    timer.start()
    bound = server.socket.getsockname()
    Handler.redirects = {
        path: url.replace("{port}", str(bound[1]))
        for path, url in (r.split("=", 1) for r in args.redirect)
    }
    say("https: %s:%d" % (bound[0], bound[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
