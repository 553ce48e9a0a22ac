"""A python3 http.server service with a slow start: heavy standard-library imports and a large
in-memory index built before it answers. GET / answers with a digest of that state, the pid and a
request counter, so a snapshot that lost any of it answers wrongly; GET /random answers 16 bytes
from os.urandom (getrandom) in hex."""
import sys
import time

start = time.monotonic()
# What a web framework pulls in before the first request.
import argparse, asyncio, concurrent.futures, csv, dataclasses, datetime, decimal, email.mime.multipart
import email.parser, fractions, gzip, hashlib, hmac, html.parser, http.client, http.cookies
import http.server, importlib.metadata, inspect, ipaddress, json, logging.handlers, lzma
import multiprocessing.pool, pathlib, pickle, pydoc, re, secrets, selectors, shelve, sqlite3, ssl
import statistics, string, tarfile, tempfile, textwrap, threading, tomllib, typing, unittest
import urllib.parse, urllib.request, uuid, wsgiref.simple_server, xml.dom.minidom
import xml.etree.ElementTree, zipfile, zoneinfo, os

port = int(sys.argv[1])
entries = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
index = {i: hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(entries)}
digest = hashlib.sha256("".join(index[i] for i in range(0, entries, 101)).encode()).hexdigest()[:16]
modules = len(sys.modules)
requests = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        global requests
        if self.path == "/random":
            body = os.urandom(16).hex() + "\n"
        else:
            with lock:
                requests += 1
                n = requests
            check = hashlib.sha256("".join(index[i] for i in range(0, len(index), 997)).encode()).hexdigest()[:16]
            body = (f"python-http entries={len(index)} digest={digest} check={check} modules={modules} "
                    f"pid={os.getpid()} requests={n}\n")
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(f"python-http listening on 127.0.0.1:{port} after {time.monotonic() - start:.2f} s", flush=True)
server.serve_forever()
