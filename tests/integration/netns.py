"""Two test hosts in network namespaces of our own, joined by a veth pair.

The "server" namespace stands for the A1 host, the "client" namespace for the internet; the
client holds two addresses, so one can be an admin CIDR and the other not. Traffic stays
between these namespaces; both are removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Namespaces need root: a developer who is not gets them through passwordless sudo.
AS_ROOT: tuple[str, ...] = () if os.geteuid() == 0 else ("sudo", "-n")
SUBNET_PREFIX = 24
SERVER_ADDRESS = "10.200.0.1"
ADMIN_ADDRESS = "10.200.0.7"
OUTSIDER_ADDRESS = "10.200.0.9"


def _ip(*args: str) -> None:
    subprocess.run([*AS_ROOT, "ip", *args], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class NetnsHosts:
    server: str  # namespace names
    client: str

    @property
    def tag(self) -> str:
        """What every name of this pair of hosts starts with (namespaces, links)."""
        return self.server.removesuffix("-srv")

    def run_on_server(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AS_ROOT, "ip", "netns", "exec", self.server, *argv],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def start_on_server(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start `argv` in the server namespace without waiting for it."""
        return subprocess.Popen(
            [*AS_ROOT, "ip", "netns", "exec", self.server, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def connects(self, source: str, port: int) -> bool:
        """Whether a TCP connection from `source` (a client address) to the server succeeds."""
        return connects_from(self.client, source, SERVER_ADDRESS, port)


def connects_from(
    namespace: str, source: str | None, destination: str, port: int, uid: int | None = None
) -> bool:
    """Whether a TCP connection from `source` in `namespace` to `destination:port` succeeds
    (a refusal, a reset or two seconds of silence is a failure). `source` None lets the kernel
    choose; `uid` runs the client as that user, not root."""
    probe = (
        "import socket, sys\n"
        "try:\n"
        "    source = (sys.argv[3], 0) if len(sys.argv) > 3 else None\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2,\n"
        "                             source_address=source).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    argv = ["python3", "-c", probe, destination, str(port), *([source] if source else [])]
    as_user = (
        [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    )
    result = subprocess.run(
        [*AS_ROOT, "ip", "netns", "exec", namespace, *as_user, *argv],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0


@contextlib.contextmanager
def netns_hosts() -> Iterator[NetnsHosts]:
    tag = f"aisw{os.getpid()}"
    hosts = NetnsHosts(server=f"{tag}-srv", client=f"{tag}-cli")
    server_link, client_link = f"{tag}s", f"{tag}c"
    _ip("netns", "add", hosts.server)
    try:
        _ip("netns", "add", hosts.client)
        _ip("link", "add", server_link, "type", "veth", "peer", "name", client_link)
        _ip("link", "set", server_link, "netns", hosts.server)
        _ip("link", "set", client_link, "netns", hosts.client)
        _ip(
            "-n",
            hosts.server,
            "addr",
            "add",
            f"{SERVER_ADDRESS}/{SUBNET_PREFIX}",
            "dev",
            server_link,
        )
        for address in (ADMIN_ADDRESS, OUTSIDER_ADDRESS):
            _ip("-n", hosts.client, "addr", "add", f"{address}/{SUBNET_PREFIX}", "dev", client_link)
        for namespace, link in ((hosts.server, server_link), (hosts.client, client_link)):
            _ip("-n", namespace, "link", "set", link, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield hosts
    finally:
        for namespace in (hosts.client, hosts.server):
            subprocess.run(
                [*AS_ROOT, "ip", "netns", "del", namespace], capture_output=True, check=False
            )


@contextlib.contextmanager
def listening(hosts: NetnsHosts, ports: Sequence[int]) -> Iterator[None]:
    """Accept (and close) TCP connections on `ports` inside the server namespace."""
    with listening_in(hosts.server, SERVER_ADDRESS, ports):
        yield


@contextlib.contextmanager
def listening_in(namespace: str, address: str, ports: Sequence[int]) -> Iterator[None]:
    """Accept (and close) TCP connections on `address:ports` inside `namespace`."""
    script = (
        "import socket, sys, threading\n"
        "def serve(port):\n"
        "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"    s.bind(('{address}', port)); s.listen()\n"
        "    while True:\n"
        "        s.accept()[0].close()\n"
        "for port in sys.argv[1:]:\n"
        "    threading.Thread(target=serve, args=(int(port),), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen(
        [*AS_ROOT, "ip", "netns", "exec", namespace, "python3", "-c", script, *map(str, ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # The listener prints once it listens, or exits (and readline returns "") if it fails.
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the test listener did not start")
        yield
    finally:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def serving_http(hosts: NetnsHosts, address: str, port: int, directory: str) -> Iterator[None]:
    """An HTTP server on `address:port` in the client namespace ("the internet")."""
    process = subprocess.Popen(
        [*AS_ROOT, "ip", "netns", "exec", hosts.client, "python3", "-m", "http.server",
         str(port), "--bind", address, "--directory", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _listens(hosts.client, address, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test HTTP server did not start")
            time.sleep(0.05)
        yield
    finally:
        process.kill()
        process.wait(timeout=10)


def _listens(namespace: str, address: str, port: int) -> bool:
    listed = subprocess.run(
        [*AS_ROOT, "ip", "netns", "exec", namespace, "ss", "-Hltn", f"src {address}:{port}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return bool(listed.stdout.strip())


# A container behind the server, on a network of its own, as Docker puts one on its bridge
# (the server's end of the link carries a bridge's name as Docker gives it: `br-<network id>`).
CONTAINER_BRIDGE = "br-aiswarm"
CONTAINER_GATEWAY = "172.30.0.1"
CONTAINER_ADDRESS = "172.30.0.2"
# The instance metadata service's address, also OCI's resolver (port 53), held by the
# "internet" namespace in these tests.
METADATA_ADDRESS = "169.254.169.254"


@contextlib.contextmanager
def container_behind(hosts: NetnsHosts) -> Iterator[str]:
    """A third namespace (yielded by name) behind the server, which forwards and masquerades
    its traffic as Docker does; the client also answers on the metadata service's address."""
    container = f"{hosts.tag}-ctr"
    _ip("netns", "add", container)
    try:
        # Made inside the server namespace, so the bridge's name is not taken on this machine.
        _ip("-n", hosts.server, "link", "add", CONTAINER_BRIDGE, "type", "veth",
            "peer", "name", "eth0", "netns", container)  # fmt: skip
        _ip("-n", hosts.server, "addr", "add", f"{CONTAINER_GATEWAY}/24", "dev", CONTAINER_BRIDGE)
        _ip("-n", container, "addr", "add", f"{CONTAINER_ADDRESS}/24", "dev", "eth0")
        for namespace, link in ((hosts.server, CONTAINER_BRIDGE), (container, "eth0")):
            _ip("-n", namespace, "link", "set", link, "up")
        _ip("-n", container, "link", "set", "lo", "up")
        _ip("-n", container, "route", "add", "default", "via", CONTAINER_GATEWAY)
        _ip("-n", hosts.client, "addr", "add", f"{METADATA_ADDRESS}/32", "dev", f"{hosts.tag}c")
        _ip("-n", hosts.server, "route", "add", f"{METADATA_ADDRESS}/32", "via", ADMIN_ADDRESS)
        for argv in (
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "172.30.0.0/24",
             "!", "-o", CONTAINER_BRIDGE, "-j", "MASQUERADE"],
        ):  # fmt: skip
            done = hosts.run_on_server(argv)
            if done.returncode != 0:
                raise RuntimeError(f"{argv}: {done.stderr}")
        yield container
    finally:
        subprocess.run(
            [*AS_ROOT, "ip", "netns", "del", container], capture_output=True, check=False
        )


# A DNS server that answers every question for an A record with DNS_ANSWER, over UDP and TCP,
# on each port given: a stand-in for OCI's resolver.
DNS_ANSWER = "192.0.2.53"
_DNS_STUB = """
import socket, socketserver, sys, threading

def answer(query):
    question_end = query.index(b"\\0", 12) + 5
    header = query[:2] + b"\\x81\\x80" + b"\\0\\x01\\0\\x01\\0\\0\\0\\0"
    record = b"\\xc0\\x0c\\0\\x01\\0\\x01\\0\\0\\0\\x3c\\0\\x04" + socket.inet_aton(sys.argv[2])
    return header + query[12:question_end] + record

class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(answer(data), self.client_address)

class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        size = int.from_bytes(self.rfile.read(2), "big")
        reply = answer(self.rfile.read(size))
        self.wfile.write(len(reply).to_bytes(2, "big") + reply)

for port in sys.argv[3:]:
    for server in (socketserver.UDPServer, socketserver.TCPServer):
        handler = Udp if server is socketserver.UDPServer else Tcp
        server.allow_reuse_address = True
        made = server((sys.argv[1], int(port)), handler)
        threading.Thread(target=made.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def serving_dns(namespace: str, address: str, ports: Sequence[int]) -> Iterator[None]:
    """The DNS stub on `address:ports` (UDP and TCP) inside `namespace`."""
    process = subprocess.Popen(
        [*AS_ROOT, "ip", "netns", "exec", namespace, "python3", "-c", _DNS_STUB, address,
         DNS_ANSWER, *map(str, ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the test DNS server did not start")
        yield
    finally:
        process.kill()
        process.wait(timeout=10)


_DNS_QUERY = """
import random, socket, sys
server, port, transport, source_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ident = random.randbytes(2)
header = ident + b"\\x01\\0\\0\\x01\\0\\0\\0\\0\\0\\0"
query = header + b"\\x07example\\x03com\\0" + b"\\0\\x01\\0\\x01"
try:
    if transport == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("", source_port))
        sock.settimeout(2)
        sock.sendto(query, (server, port))
        reply = sock.recv(512)
    else:
        sock = socket.create_connection((server, port), timeout=2)
        sock.sendall(len(query).to_bytes(2, "big") + query)
        reply = sock.recv(514)[2:]
except OSError:
    sys.exit(1)
if reply[:2] != ident or reply[3] & 0x0F or reply[6:8] != b"\\0\\x01":
    sys.exit(2)
print(socket.inet_ntoa(reply[-4:]))
"""


def resolves_from(
    namespace: str, server: str, port: int, transport: str, udp_source_port: int = 0
) -> str | None:
    """The address a DNS query for example.com over `transport` (udp or tcp) from `namespace`
    to `server:port` gets back, or None when no answer comes. A UDP query is sent from
    `udp_source_port` (0: any)."""
    result = subprocess.run(
        [*AS_ROOT, "ip", "netns", "exec", namespace, "python3", "-c", _DNS_QUERY, server,
         str(port), transport, str(udp_source_port)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )  # fmt: skip
    return result.stdout.strip() if result.returncode == 0 else None
