"""svcctl call against real provider processes (tests/providers/provider.py, which shares
no code with svcctl's codec): every encoding, errors, timeouts, dead addresses, choice of
address, and --via."""
import json
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROVIDER = os.path.join(HERE, "..", "providers", "provider.py")

# Values a JSON caller cares about: nesting, unicode, floats that must stay floats, integers
# at the edges of 64 bits, and empty containers.
RICH = {"name": "svc-α/β ✓", "emoji": "😀", "port": 8080, "weight": 0.25, "whole": 2.0,
        "neg": -1, "big": 4294967296, "u64max": 18446744073709551615, "i64min": -9223372036854775808,
        "on": True, "off": False, "none": None, "tags": ["a", "b", "日本"],
        "meta": {"k": "v", "nested": {"deep": [1, [2, [3]]]}}, "empty_list": []}


def start(kind):
    p = subprocess.Popen([sys.executable if "kazoo" in sys.modules else "/usr/bin/python3",
                          PROVIDER, kind, "0"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "ready", line
    return p, int(line[1])


@pytest.fixture(scope="module")
def providers():
    procs = {}
    for name, kind in (("json", "json"), ("json2", "json"), ("yar", "yar")):
        procs[name] = start(kind)
    yield {name: port for name, (_, port) in procs.items()}
    for p, _ in procs.values():
        p.terminate()
        p.wait(timeout=10)
        p.stdout.close()


@pytest.fixture
def svc(reg, providers):
    """Service "s": one JSON provider, one Yar provider (as separate services' addresses are
    per service, the Yar interfaces live in service "y")."""
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", f"127.0.0.1:{providers['json']}", "--dc", "a")
    for iface in ("echo", "add", "whoami", "slow", "fail", "notjson"):
        reg.ok("register", "api", "s", iface, "--path", f"/{iface}")
    reg.ok("register", "service", "y")
    reg.ok("register", "address", "y", f"127.0.0.1:{providers['yar']}")
    for enc in ("yar-msgpack", "yar-json"):
        tag = "m" if enc == "yar-msgpack" else "j"
        for method in ("add", "echo", "fail", "noisy", "nothing", "bigints", "args", "token", "nosuch",
                       "objects"):
            reg.ok("register", "api", "y", f"{method}_{tag}", "--path", "/", "--encoding", enc,
                   "--method", method)
        reg.ok("register", "api", "y", f"slow_{tag}", "--path", "/", "--encoding", enc,
               "--method", "slow", "--timeout-ms", "300")
        reg.ok("register", "api", "y", f"garbage_{tag}", "--path", "/garbage", "--encoding", enc,
               "--method", "echo")
        reg.ok("register", "api", "y", f"http500_{tag}", "--path", "/http500", "--encoding", enc,
               "--method", "echo")
    return reg


def call(reg, *args, data=None, input=None):
    argv = ["-o", "json", "call", *args]
    if data is not None:
        argv += ["--data", data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)]
    return reg.run(*argv, input=input)


# ---- results come back unchanged ------------------------------------------------------

def test_json_provider_result_is_returned_byte_for_byte(svc):
    text = json.dumps(RICH, ensure_ascii=False)
    r = call(svc, "s", "echo", data=text)
    assert r.code == 0, r
    assert r.out == text + "\n"


def test_json_provider_simple_call(svc):
    r = call(svc, "s", "add", data={"a": 40, "b": 2})
    assert r.code == 0 and json.loads(r.out) == {"sum": 42}


@pytest.mark.parametrize("tag", ["m", "j"])
def test_yar_echo_of_an_object(svc, tag):
    r = call(svc, "y", f"echo_{tag}", data=RICH)
    assert r.code == 0, r
    got = json.loads(r.out)
    if tag == "m":
        assert got == RICH
        # floats stay floats through msgpack
        assert '"whole":2.0' in r.out and '"weight":0.25' in r.out
    else:
        # PHP's JSON packager writes 2.0 as 2: that is what the provider sent
        assert got == dict(RICH, whole=2)
    assert isinstance(got["u64max"], int) and got["u64max"] == 2**64 - 1


def test_yar_msgpack_php_objects(svc):
    # msgpack-php writes an object as a map with its class name under a nil key.
    r = call(svc, "y", "objects_m")
    assert r.code == 0, r
    assert r.out == '{"empty":{},"point":{"x":1,"y":2}}\n'


def test_empty_object_goes_to_php_as_an_empty_array(svc):
    # An empty msgpack map would reach PHP code as a stdClass object; svcctl sends [].
    r = call(svc, "y", "echo_m", data={"empty_map": {}, "x": 1})
    assert r.code == 0, r
    assert json.loads(r.out) == {"empty_map": [], "x": 1}


@pytest.mark.parametrize("tag", ["m", "j"])
def test_yar_positional_parameters(svc, tag):
    r = call(svc, "y", f"add_{tag}", data=[40, 2])
    assert r.code == 0 and json.loads(r.out) == 42
    r = call(svc, "y", f"args_{tag}", data=[1, "two", [3]])
    assert json.loads(r.out) == [1, "two", [3]]
    r = call(svc, "y", f"args_{tag}")  # no --data: no parameters
    assert r.code == 0 and json.loads(r.out) == []


@pytest.mark.parametrize("tag", ["m", "j"])
def test_yar_big_integers_and_null(svc, tag):
    r = call(svc, "y", f"bigints_{tag}")
    assert r.code == 0
    assert json.loads(r.out) == [2**64 - 1, -2**63, 2**53 + 1]
    r = call(svc, "y", f"nothing_{tag}")
    assert r.code == 0 and r.out == "null\n"


def test_yar_output_goes_to_stderr(svc):
    r = call(svc, "y", "noisy_m", data=["hi"])
    assert r.code == 0 and json.loads(r.out) == "hi"
    assert "provider printed: printed-by-server:hi" in r.err


def test_key_travels_as_the_yar_token(svc):
    r = svc.run("-o", "json", "call", "y", "token_m", "--key", "k-123")
    assert r.code == 0 and json.loads(r.out) == "k-123"


def test_data_from_file_and_stdin(svc, tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"a": 1, "b": 2}')
    r = svc.run("-o", "json", "call", "s", "add", "--data", f"@{f}")
    assert r.code == 0 and json.loads(r.out) == {"sum": 3}
    r = svc.run("-o", "json", "call", "s", "add", "--data", "-", input='{"a": 5, "b": 5}')
    assert r.code == 0 and json.loads(r.out) == {"sum": 10}


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["m", "j"])
def test_yar_exception_is_exit_7(svc, tag):
    r = call(svc, "y", f"fail_{tag}")
    assert r.code == 7, r
    assert "raised SvcTestException (code 42): intentional failure" in r.err
    assert r.out == ""


@pytest.mark.parametrize("tag", ["m", "j"])
def test_yar_unknown_method_is_exit_7(svc, tag):
    r = call(svc, "y", f"nosuch_{tag}")
    assert r.code == 7
    assert "Yar error 4: call to undefined api SvcTestService::nosuch()" in r.err


def test_json_provider_http_error_is_exit_7(svc):
    r = call(svc, "s", "fail")
    assert r.code == 7
    assert "answered HTTP 500" in r.err and "intentional failure" in r.err


@pytest.mark.parametrize("iface", ["garbage_m", "garbage_j", "http500_m", "http500_j"])
def test_bad_framing_is_exit_8(svc, iface):
    r = call(svc, "y", iface, data=[1])
    assert r.code == 8, r
    assert ("not a Yar message" in r.err) or ("answered HTTP 500" in r.err)


def test_json_provider_answer_not_json_is_exit_8(svc):
    r = call(svc, "s", "notjson")
    assert r.code == 8 and "is not JSON" in r.err


def test_timeout_from_the_interface_and_from_the_flag(svc):
    r = call(svc, "y", "slow_m", data=[3000])  # interface timeout_ms 300
    assert r.code == 8 and "within 300 ms" in r.err, r
    r = svc.run("-o", "json", "call", "s", "slow", "--data", '{"ms": 3000}', "--timeout-ms", "250")
    assert r.code == 8 and "within 250 ms" in r.err, r


def test_dead_address_is_exit_8(reg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg.ok("register", "service", "d")
    reg.ok("register", "address", "d", f"127.0.0.1:{port}")
    reg.ok("register", "api", "d", "x", "--path", "/x")
    r = reg.run("call", "d", "x")
    assert r.code == 8 and f"cannot connect to 127.0.0.1:{port}" in r.err, r


def test_not_found_down_and_no_address(svc, providers):
    assert call(svc, "nope", "x").code == 3
    r = call(svc, "s", "nope")
    assert r.code == 3 and 'interface "nope" of service "s" not found' in r.err
    svc.ok("register", "api", "s", "add", "--status", "down")
    r = call(svc, "s", "add", data={"a": 1, "b": 1})
    assert r.code == 9 and "is down" in r.err
    r = svc.run("-o", "json", "call", "s", "add", "--data", '{"a":1,"b":1}', "--force")
    assert r.code == 0
    svc.ok("register", "service", "e")
    svc.ok("register", "api", "e", "x", "--path", "/x")
    r = call(svc, "e", "x")
    assert r.code == 8 and "no up address" in r.err


def test_bad_data_is_exit_2(svc):
    for bad in ("{oops", "3", '"str"', "[" * 1000 + "]" * 1000):
        r = call(svc, "s", "echo", data=bad)
        assert r.code == 2, (bad[:20], r)
        assert "invalid --data" in r.err
    r = svc.run("call", "s", "echo", "--data", "@/nonexistent/file")
    assert r.code == 2


# ---- choosing an address -------------------------------------------------------------------

def test_dc_preference_and_weights(svc, providers):
    svc.ok("register", "address", "s", f"127.0.0.1:{providers['json2']}", "--dc", "b")
    ports = {json.loads(call(svc, "s", "whoami", "--dc", "b").out)["port"] for _ in range(8)}
    assert ports == {providers["json2"]}
    ports = {json.loads(call(svc, "s", "whoami", "--dc", "a").out)["port"] for _ in range(8)}
    assert ports == {providers["json"]}
    # No provider in dc "c": fall back to all; weight 0 is never chosen.
    svc.ok("register", "address", "s", f"127.0.0.1:{providers['json2']}", "--weight", "0")
    r = call(svc, "s", "whoami", "--dc", "c", "--explain")
    assert "none up in dc c" in r.err
    ports = {json.loads(call(svc, "s", "whoami").out)["port"] for _ in range(8)}
    assert ports == {providers["json"]}


def test_both_addresses_get_traffic_by_weight(svc, providers):
    svc.ok("register", "address", "s", f"127.0.0.1:{providers['json2']}", "--dc", "b")
    seen = {json.loads(call(svc, "s", "whoami").out)["port"] for _ in range(40)}
    # Equal weights: the chance that 40 picks miss one of two addresses is 2^-39.
    assert seen == {providers["json"], providers["json2"]}


def test_explain(svc, providers):
    r = svc.run("-o", "json", "call", "y", "add_m", "--data", "[1,2]", "--explain")
    assert r.code == 0
    assert f"chose 127.0.0.1:{providers['yar']} (dc -, weight 100 of 100 among 1 up address)" in r.err
    assert f"POST http://127.0.0.1:{providers['yar']}/ (Yar, MSGPACK packager, method add" in r.err
    assert "answer: HTTP 200" in r.err


def test_explicit_address(svc, providers):
    r = svc.run("-o", "json", "call", "s", "whoami", "--address", f"127.0.0.1:{providers['json2']}")
    assert r.code == 0 and json.loads(r.out)["port"] == providers["json2"]


# ---- --via ---------------------------------------------------------------------------------

def test_via_sends_json_with_the_key(reg, providers):
    base = f"http://127.0.0.1:{providers['json']}"
    r = reg.run("-o", "json", "call", "user", "getUser", "--via", base, "--key", "k1",
                "--data", '{"id": 7}')
    assert r.code == 0, r
    seen = json.loads(r.out)
    assert seen["method"] == "POST" and seen["path"] == "/user/getUser"
    assert seen["headers"]["x-api-key"] == "k1"
    assert seen["headers"]["content-type"] == "application/json"
    assert json.loads(seen["body"]) == {"id": 7}


def test_via_gateway_error_is_exit_7(reg, providers):
    r = reg.run("call", "x", "y", "--via", f"http://127.0.0.1:{providers['json']}/gwerror")
    assert r.code == 7, r
    assert "no_upstream: no healthy provider (HTTP 503)" in r.err
