#!/usr/bin/env python3
"""Test providers that share no code with svcctl's codec, so a symmetric bug cannot hide.

  provider.py json PORT    HTTP+JSON provider
  provider.py yar PORT     Yar-over-HTTP provider, JSON and MSGPACK packagers, answering as
                           the real PHP Yar server does (see YAR.md and the captured vectors)

Prints "ready PORT" on stdout once listening (PORT 0 picks a free one).

JSON provider paths: /echo (the body back, byte for byte), /add {"a","b"}, /whoami (its
port), /slow {"ms"}, /fail (HTTP 500 with an error object), /notjson, /record (what it
received: method, path, headers, body), /gwerror (a gateway-style 503 error).

Yar methods: add(a, b), echo(x), fail() (status 64, exception map), slow(ms),
noisy(x) (prints, "o"), nothing() (r = null), whoami(), bigints(), objects() (PHP
objects as msgpack-php writes them), and any other name is
status 4. Paths /garbage and /http500 answer with bad framing and HTTP 500.
"""
import http.server
import json
import socketserver
import struct
import sys
import time

import msgpack

MAGIC = 0x80DFEC60
HEADER = struct.Struct(">IHII32s32sI")  # 82 bytes


def php_json(value):
    """json_encode without flags: compact, '/' escaped, non-ASCII as \\uXXXX, and a float
    with no fractional part written as an integer."""
    def fix(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
            return int(v)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v
    return json.dumps(fix(value), separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def php_objects(v):
    """msgpack-php decodes an empty map as a stdClass object and sends it back as
    {nil: "stdClass"}."""
    if isinstance(v, dict):
        if not v:
            return {None: "stdClass"}
        return {k: php_objects(x) for k, x in v.items()}
    if isinstance(v, list):
        return [php_objects(x) for x in v]
    return v


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "json"
    # The head and the body go out in separate writes: without TCP_NODELAY the body waits
    # for the peer's delayed ACK (40 ms a call).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def reply(self, status, body, content_type="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.body()
        if self.kind == "json-flaky":  # every fifth call fails: a bad build
            self.server.calls = getattr(self.server, "calls", 0) + 1
            if self.server.calls % 5 == 0:
                return self.reply(500, json.dumps({"error": {"code": "boom", "message": "flaky"}}))
            return self.json_call(data)
        if self.kind == "json":
            self.json_call(data)
        else:
            self.yar_call(data)

    # ---- JSON ----------------------------------------------------------------------
    def json_call(self, data):
        path = self.path
        if path == "/echo":
            return self.reply(200, data)
        if path == "/add":
            p = json.loads(data)
            return self.reply(200, json.dumps({"sum": p["a"] + p["b"]}))
        if path == "/whoami":
            return self.reply(200, json.dumps({"port": self.server.server_address[1]}))
        if path == "/slow":
            ms = json.loads(data).get("ms", 1000)
            time.sleep(ms / 1000)
            return self.reply(200, json.dumps({"slept": ms}))
        if path == "/fail":
            return self.reply(500, json.dumps({"error": {"code": "boom", "message": "intentional failure"}}))
        if path == "/notjson":
            return self.reply(200, "<html>oops</html>", "text/html")
        if path.startswith("/gwerror"):
            return self.reply(503, json.dumps({"error": {"code": "no_upstream", "message": "no healthy provider",
                                                         "service": "s", "interface": "i"}}))
        # /record, and anything else: say what arrived
        return self.reply(200, json.dumps({"method": self.command, "path": path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": data.decode("utf-8", "replace")}))

    # ---- Yar -----------------------------------------------------------------------
    def yar_reply(self, packager, rid, status, result=None, error=None, output=""):
        body = {"i": rid, "s": status}
        if output:
            body["o"] = output
        if status == 0:
            body["r"] = result
        else:
            body["e"] = error
        if packager == "JSON":
            payload = php_json(body).encode()
        else:
            payload = msgpack.packb(body, use_bin_type=False)
        header = HEADER.pack(rid & 0xFFFFFFFF, 0, MAGIC, 0, b"PHP Yar Server", b"",
                             8 + len(payload))
        name = packager.encode().ljust(8, b"\0")
        self.reply(200, header + name + payload, "application/octet-stream")

    def yar_call(self, data):
        if self.path == "/garbage":
            return self.reply(200, b"\x00\x01 this is not a yar message", "application/octet-stream")
        if self.path == "/http500":
            return self.reply(500, "internal error", "text/plain")
        ctype = self.headers.get("Content-Type")
        if not ctype or ctype.startswith("multipart/form-data"):
            return self.yar_reply("MSGPACK", 0, 1, error="empty request")  # PHP saw no body
        if not data:
            return self.yar_reply("MSGPACK", 0, 1, error="empty request body")
        if len(data) < 82:
            return self.yar_reply("MSGPACK", 0, 2, error="malformed request, 82 bytes expected at least")
        _id, _ver, magic, _res, provider, token, _blen = HEADER.unpack(data[:82])
        if magic != MAGIC:
            return self.yar_reply("MSGPACK", 0, 1, error="malformed request header ''")
        name = data[82:90][:7].split(b"\0")[0].decode("latin-1").upper()
        if name not in ("JSON", "MSGPACK"):
            return self.yar_reply("MSGPACK", 0, 1, error=f"unsupported packager '{name}'")
        payload = data[90:]
        try:
            if name == "JSON":
                req = json.loads(payload)
            else:
                req = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except Exception:
            return self.yar_reply("MSGPACK", 0, 1, error=f"{name.lower()} unpack error")
        rid = int(req.get("i", 0))
        if "m" not in req:
            return self.yar_reply(name, rid, 4, error="need specifical request method")
        if "p" not in req:
            return self.yar_reply(name, rid, 4, error="need specifical request parameters")
        params = req["p"]
        if isinstance(params, dict):
            params = list(params.values())
        self.server.last_token = token.split(b"\0")[0].decode()
        method = str(req["m"]).lower()
        if method == "add":
            return self.yar_reply(name, rid, 0, result=params[0] + params[1])
        if method == "echo":
            value = params[0] if params else None
            if name == "MSGPACK":
                value = php_objects(value)
            return self.yar_reply(name, rid, 0, result=value)
        if method == "args":
            return self.yar_reply(name, rid, 0, result=params)
        if method == "token":
            return self.yar_reply(name, rid, 0, result=self.server.last_token)
        if method == "fail":
            return self.yar_reply(name, rid, 64, error={
                "message": "intentional failure", "code": 42, "file": "/srv/yar/server.php",
                "line": 51, "_type": "SvcTestException"})
        if method == "slow":
            time.sleep((params[0] if params else 1000) / 1000)
            return self.yar_reply(name, rid, 0, result="slept")
        if method == "noisy":
            return self.yar_reply(name, rid, 0, result=params[0], output=f"printed-by-server:{params[0]}")
        if method == "nothing":
            return self.yar_reply(name, rid, 0, result=None)
        if method == "objects":
            # what msgpack-php sends for PHP objects: the class name under a nil key
            return self.yar_reply(name, rid, 0, result={"empty": {None: "stdClass"},
                                                         "point": {None: "Point", "x": 1, "y": 2}})
        if method == "whoami":
            return self.yar_reply(name, rid, 0, result={"port": self.server.server_address[1]})
        if method == "bigints":
            return self.yar_reply(name, rid, 0, result=[2**64 - 1, -2**63, 2**53 + 1])
        return self.yar_reply(name, rid, 4, error=f"call to undefined api SvcTestService::{req['m']}()")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    handler = type("H", (Handler,), {"kind": kind})
    srv = Server(("127.0.0.1", port), handler)
    srv.last_token = ""
    print(f"ready {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
