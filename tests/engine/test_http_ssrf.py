"""SSRF: http-request resolves once and connects to the checked address; embedded IPv4 forms and cloud
metadata addresses are judged as what they reach.

Every test here runs with a fake DNS (socket.getaddrinfo answers from a table, never the network) and a
connect guard (socket.create_connection reaches 127.0.0.1 only and records every attempt), so the tests
see each lookup and each TCP connection the node makes.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import Limits
from nodedrop_rq.workflow.netguard import (
    METADATA_ADDRESSES,
    AddressPolicy,
    AddressRefused,
    GuardedTransport,
    embedded_ipv4,
)

from .helpers import node, out, run, trigger, workflow

PUBLIC = "93.184.215.14"  # never reached: the connect guard refuses everything but 127.0.0.1
LOCAL = Limits(allowed_networks=("127.0.0.1/32",))
OPEN = Limits(allow_private_network=True, allowed_networks=("0.0.0.0/0", "::/0"))


class Handler(BaseHTTPRequestHandler):
    hits: list[tuple[str, str | None]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Handler.hits.append((self.path, self.headers.get("Host")))
        parts = urlsplit(self.path)
        if parts.path == "/to":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["loc"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(httpd: ThreadingHTTPServer):
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture(scope="module")
def port():
    httpd = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def hits():
    Handler.hits = []
    return Handler.hits


class FakeDNS:
    """Names answer from ``table`` (one answer list per lookup, the last one repeating); literals resolve
    numerically; any other name does not exist."""

    def __init__(self, real: Callable) -> None:
        self.real = real
        self.table: dict[str, list[list[str]]] = {}
        self.lookups: defaultdict[str, int] = defaultdict(int)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in self.table:
            answers = self.table[name]
            answer = answers[min(self.lookups[name], len(answers) - 1)]
            self.lookups[name] += 1
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port))
                for a in answer
            ]
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (fake DNS)") from None
        return self.real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture(autouse=True)
def connections(monkeypatch):
    attempts: list[tuple[str, int]] = []
    real = socket.create_connection

    def connect(address, *args, **kwargs):
        attempts.append((address[0], address[1]))
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(111, f"refused by the test's connect guard: {address[0]}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    return attempts


def request(url, limits=LOCAL, settings=None):
    return run(workflow([trigger(), node("h", "http-request", settings=settings, url=url)]), None, limits=limits)


# --- DNS rebinding --------------------------------------------------------------------------------------


def test_rebinding_to_loopback_connects_to_the_checked_public_address(dns, connections, hits, port):
    dns.table["rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    result = request(f"http://rebind.test:{port}/secret", limits=Limits())
    assert result.status == "failed" and "refused by the test's connect guard" in result.error.message
    assert dns.lookups["rebind.test"] == 1
    assert connections == [(PUBLIC, port)]
    assert hits == []
    # The resolver really rebinds: a second lookup, as a check-then-connect client makes, gets loopback.
    assert socket.getaddrinfo("rebind.test", port)[0][4][0] == "127.0.0.1"


def test_rebinding_away_from_an_allowed_address_stays_pinned(dns, connections, hits, port):
    dns.table["pinned.test"] = [["127.0.0.1"], ["10.9.9.9"]]
    result = request(f"http://pinned.test:{port}/json")
    assert result.status == "succeeded" and out(result, "h") == [{"ok": True}]
    assert dns.lookups["pinned.test"] == 1 and connections == [("127.0.0.1", port)]
    assert hits == [("/json", f"pinned.test:{port}")]  # the Host header is the URL's name, not the address


def test_every_address_of_a_host_is_checked(dns, connections):
    dns.table["mixed.test"] = [[PUBLIC, "10.0.0.7"]]
    result = request("http://mixed.test/")
    assert "mixed.test resolves to the non-public address 10.0.0.7" in result.error.message
    assert connections == []


def test_unknown_host_is_a_dns_error(dns):
    result = request("http://nowhere.test/", settings={"continueOnFail": True})
    item = out(result, "h")[0]
    assert item["errorType"] == "DNS_ERROR" and "cannot resolve host 'nowhere.test'" in item["errorMessage"]


# --- redirects ------------------------------------------------------------------------------------------


def test_redirect_to_a_private_name_is_refused(dns, connections, hits, port):
    dns.table["internal.test"] = [["10.0.0.5"]]
    result = request(f"http://127.0.0.1:{port}/to?loc=http://internal.test:{port}/admin")
    assert result.status == "failed"
    assert "internal.test resolves to the non-public address 10.0.0.5" in result.error.message
    assert [path for path, _ in hits] == [f"/to?loc=http://internal.test:{port}/admin"]
    assert connections == [("127.0.0.1", port)]


@pytest.mark.parametrize(
    "location, problem",
    [
        ("http://10.1.2.3/", "non-public address 10.1.2.3"),
        ("http://[::ffff:192.168.0.1]/", "(the IPv4-mapped form of 192.168.0.1)"),
        ("http://[64:ff9b::a00:1]/", "(the NAT64 form of 10.0.0.1)"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
    ],
)
def test_redirect_to_a_private_address_is_refused(connections, port, location, problem):
    result = request(f"http://127.0.0.1:{port}/to?loc={location}")
    assert result.status == "failed" and problem in result.error.message
    assert connections == [("127.0.0.1", port)]


def test_each_redirect_hop_is_pinned(dns, connections, hits, port):
    dns.table["hop.test"] = [[PUBLIC], ["127.0.0.1"]]
    result = request(f"http://127.0.0.1:{port}/to?loc=http://hop.test:{port}/secret")
    assert "refused by the test's connect guard" in result.error.message
    assert dns.lookups["hop.test"] == 1 and connections == [("127.0.0.1", port), (PUBLIC, port)]
    assert len(hits) == 1  # only the redirect itself


def test_redirect_to_metadata_is_refused_even_with_everything_allowed(connections, port):
    result = request(f"http://127.0.0.1:{port}/to?loc=http://[::ffff:169.254.169.254]/", limits=OPEN)
    assert "IPv4-mapped form of 169.254.169.254" in result.error.message
    assert "cloud metadata" in result.error.message and connections == [("127.0.0.1", port)]


# --- embedded IPv4 forms --------------------------------------------------------------------------------


def mapped(v4: ipaddress.IPv4Address, _: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0xFFFF << 32) | int(v4))


def translated(v4: ipaddress.IPv4Address, _: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0xFFFF << 48) | int(v4))


def compatible(v4: ipaddress.IPv4Address, _: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(v4))


def nat64(v4: ipaddress.IPv4Address, _: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x0064FF9B << 96) | int(v4))


def sixtofour(v4: ipaddress.IPv4Address, low: int) -> ipaddress.IPv6Address:
    # 2002:V4ADDR::/48, then any subnet and interface id.
    return ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | (low & (2**80 - 1)))


def teredo(v4: ipaddress.IPv4Address, low: int) -> ipaddress.IPv6Address:
    # 2001:0::/32, server, flags and port from ``low``, then the client address inverted.
    return ipaddress.IPv6Address((0x20010000 << 96) | ((low & (2**64 - 1)) << 32) | (~int(v4) & 0xFFFFFFFF))


FORMS = {
    "IPv4-mapped": mapped,
    "IPv4-translated": translated,
    "IPv4-compatible": compatible,
    "NAT64": nat64,
    "6to4": sixtofour,
    "Teredo": teredo,
}
NON_PUBLIC = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
non_public_v4 = st.sampled_from(NON_PUBLIC).flatmap(lambda n: st.ip_addresses(network=n))
metadata_v4 = st.sampled_from(sorted(str(a) for a in METADATA_ADDRESSES if a.version == 4)).map(ipaddress.IPv4Address)
public_v4 = st.ip_addresses(v=4).filter(lambda a: a.is_global and a not in METADATA_ADDRESSES)
forms = st.sampled_from(sorted(FORMS))
low_bits = st.integers(0, 2**80 - 1)
FAST = settings(max_examples=300, deadline=None, derandomize=True)


def test_forms_round_trip():
    v4 = ipaddress.IPv4Address("169.254.169.254")
    for name, make in FORMS.items():
        assert embedded_ipv4(make(v4, 12345)) == (name, v4)
    assert embedded_ipv4(ipaddress.ip_address("::1")) is None  # loopback itself, not 0.0.0.1


@FAST
@given(v4=non_public_v4, form=forms, low=low_bits)
def test_embedded_non_public_address_counts_as_that_address(v4, form, low):
    address = FORMS[form](v4, low)
    with pytest.raises(AddressRefused) as refused:
        AddressPolicy().check_address(str(address), address)
    assert f"non-public address {address} (the {form} form of {v4})" in str(refused.value)
    # ...and so does the allow-list: a network that holds the IPv4 address opens its embedded forms.
    AddressPolicy.from_limits(False, [f"{v4}/32"]).check_address(str(address), address)


@FAST
@given(v4=metadata_v4, form=forms, low=low_bits, allow_private=st.booleans(),
       networks=st.lists(st.sampled_from(["0.0.0.0/0", "::/0", "169.254.0.0/16", "100.64.0.0/10", "2002::/16",
                                          "64:ff9b::/96", "::ffff:0:0/96", "fd00::/8"]), max_size=4))
def test_metadata_in_any_form_is_refused_by_any_allow_list(v4, form, low, allow_private, networks):
    address = FORMS[form](v4, low)
    with pytest.raises(AddressRefused, match=f"cloud metadata address {address} \\(the {form} form of {v4}\\)"):
        AddressPolicy.from_limits(allow_private, networks).check_address(str(address), address)


@FAST
@given(v4=public_v4, form=st.sampled_from(["IPv4-mapped", "NAT64", "6to4"]), low=low_bits)
def test_embedded_public_address_is_public(v4, form, low):
    address = FORMS[form](v4, low)
    AddressPolicy().check_address(str(address), address)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("v4", sorted(str(a) for a in METADATA_ADDRESSES if a.version == 4))
def test_node_refuses_metadata_literals_in_every_form(connections, form, v4):
    address = FORMS[form](ipaddress.IPv4Address(v4), 1)
    result = request(f"http://[{address}]/latest/", limits=OPEN, settings={"continueOnFail": True})
    item = out(result, "h")[0]
    assert item["errorType"] == "SECURITY_ERROR"
    assert f"cloud metadata address {address} (the {form} form of {v4})" in item["errorMessage"]
    assert connections == []


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(v4=non_public_v4, form=forms, low=low_bits)
def test_node_refuses_embedded_private_literals(connections, v4, form, low):
    address = FORMS[form](v4, low)
    result = request(f"http://[{address}]:8080/", limits=Limits())
    assert result.status == "failed"
    assert f"non-public address {address} (the {form} form of {v4})" in result.error.message
    assert connections == []


@pytest.mark.parametrize("address", ["fd00:ec2::254", "169.254.170.2", "100.100.100.200", "169.254.169.254"])
def test_names_resolving_to_metadata_are_refused_with_everything_allowed(dns, connections, address):
    dns.table["meta.test"] = [[address]]
    result = request("http://meta.test/", limits=OPEN)
    assert f"meta.test resolves to the cloud metadata address {address}" in result.error.message
    assert connections == []


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata"])
def test_metadata_names_are_refused_before_any_lookup(dns, connections, host):
    result = request(f"http://{host}/computeMetadata/v1/", limits=OPEN)
    assert "is a cloud metadata endpoint" in result.error.message
    assert dict(dns.lookups) == {} and connections == []


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]"])
def test_unspecified_addresses_are_refused_with_everything_allowed(connections, host):
    result = request(f"http://{host}/", limits=OPEN)
    assert "unspecified address" in result.error.message and connections == []


# --- the allow-list still opens what it lists ------------------------------------------------------------


def test_allowed_network_from_the_setting_is_reachable(dns, connections, hits, port):
    limits = Limits.from_settings(Settings.from_env({"NODEDROP_HTTP_ALLOWED_NETWORKS": "10.0.0.0/8,127.0.0.1"}))
    dns.table["service.test"] = [["127.0.0.1"]]
    assert out(request(f"http://service.test:{port}/json", limits=limits), "h") == [{"ok": True}]
    assert out(request(f"http://127.0.0.1:{port}/json", limits=limits), "h") == [{"ok": True}]
    assert connections == [("127.0.0.1", port)] * 2
    refused = request(f"http://service.test:{port}/json", limits=Limits(allowed_networks=("10.0.0.0/8",)))
    assert "non-public address 127.0.0.1" in refused.error.message


# --- TLS keeps the hostname ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=pinned.test",
         "-addext", "subjectAltName=DNS:pinned.test"],
        check=True, capture_output=True,
    )
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    _serve(httpd)
    yield httpd.server_address[1], cert, names
    httpd.shutdown()
    httpd.server_close()


def test_tls_uses_the_hostname_for_sni_and_the_certificate(dns, connections, hits, tls_server):
    port, cert, names = tls_server
    names.clear()
    dns.table["pinned.test"] = [["127.0.0.1"], ["10.9.9.9"]]
    dns.table["wrong.test"] = [["127.0.0.1"]]
    policy = AddressPolicy.from_limits(False, ["127.0.0.1/32"])
    client = httpx.Client(transport=GuardedTransport(policy, verify=ssl.create_default_context(cafile=str(cert))))
    with client:
        assert client.get(f"https://pinned.test:{port}/json").json() == {"ok": True}
        assert names == ["pinned.test"] and hits == [("/json", f"pinned.test:{port}")]
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            client.get(f"https://wrong.test:{port}/json")
    assert connections == [("127.0.0.1", port)] * 2
