"""`DxfRegistry`, the real registry client, against a registry served over HTTPS on loopback
that asks for a bearer token per repository as Docker Hub and ghcr.io do (`401` with
`WWW-Authenticate: Bearer realm=…,service=…,scope=repository:<path>:pull`, then a token from the
realm). It serves the answers `tests.deploy.image_registry` makes; no test reaches a registry."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deploy.images import Target, check_image
from deploy.registry import (
    OCI_INDEX,
    DxfRegistry,
    Fetched,
    RegistryError,
    RegistryErrorKind,
    Repository,
)
from tests.deploy.image_registry import RecordedRegistry, config, good_multi_arch

ARM64 = "linux/arm64"
_ROUTE = re.compile(r"^/v2/(?P<path>.+)/(?P<kind>manifests|blobs)/(?P<reference>[^/]+)$")


@dataclass
class TokenRegistry:
    """What the loopback registry serves and what it saw."""

    recorded: RecordedRegistry
    refused_tokens: set[str] = field(default_factory=set)  # repository paths
    scopes_asked: list[str] = field(default_factory=list)
    wrong_digest_header: bool = False


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback registry")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "registry.pem", directory / "registry.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _handler(state: TokenRegistry, origin: list[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/token":
                self._token(parse_qs(url.query))
                return
            route = _ROUTE.match(url.path)
            if route is None:
                self._send(404, b"{}", "application/json")
                return
            path = route["path"]
            if self.headers.get("Authorization") != f"Bearer token-for-{path}":
                challenge = (
                    f'Bearer realm="{origin[0]}/token",service="loopback",'
                    f'scope="repository:{path}:pull"'
                )
                self._send(
                    401,
                    b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                    "application/json",
                    {"WWW-Authenticate": challenge},
                )
                return
            if route["kind"] == "manifests":
                found = state.recorded.manifests.get((path, route["reference"]))
                if found is None:
                    self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")
                    return
                digest = "sha256:" + "0" * 64 if state.wrong_digest_header else found.digest
                self._send(200, found.content, found.media_type, {"Docker-Content-Digest": digest})
                return
            blob = state.recorded.blobs.get((path, route["reference"]))
            if blob is None:
                self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")
                return
            self._send(200, blob, "application/octet-stream")

        def _token(self, query: dict[str, list[str]]) -> None:
            scope = query.get("scope", [""])[0]
            state.scopes_asked.append(scope)
            path = scope.removeprefix("repository:").removesuffix(":pull")
            if query.get("service") != ["loopback"] or path in state.refused_tokens:
                self._send(401, b'{"details":"access denied"}', "application/json")
                return
            self._send(200, json.dumps({"token": f"token-for-{path}"}).encode(), "application/json")

        def _send(
            self, status: int, body: bytes, media_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@dataclass
class Served:
    state: TokenRegistry
    host: str
    registry: DxfRegistry


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    cert, key = _certificate(tmp_path)
    state = TokenRegistry(RecordedRegistry())
    origin: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, origin))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    host = f"127.0.0.1:{server.server_address[1]}"
    origin.append(f"https://{host}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(state, host, DxfRegistry(tls_verify=str(cert), timeout=10))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_good_image_is_checked_through_the_token_flow(served: Served) -> None:
    built = good_multi_arch(served.state.recorded, "team/app", "1.0")
    found = check_image(served.registry, Target(f"{served.host}/team/app", "1.0", ARM64))
    assert found.ok, found.detail
    assert found.digest == built["linux/arm64/v8"]
    assert served.state.scopes_asked == ["repository:team/app:pull"]


def test_each_repository_gets_its_own_token(served: Served) -> None:
    good_multi_arch(served.state.recorded, "team/app", "1.0")
    good_multi_arch(served.state.recorded, "team/db", "2.0")
    for path, tag in (("team/app", "1.0"), ("team/db", "2.0"), ("team/app", "1.0")):
        assert check_image(served.registry, Target(f"{served.host}/{path}", tag, ARM64)).ok
    assert served.state.scopes_asked == ["repository:team/app:pull", "repository:team/db:pull"]


def test_an_arm64_entry_with_an_amd64_config_fails_over_the_wire(served: Served) -> None:
    served.state.recorded.publish("team/app", "1.0", {ARM64: config("amd64")})
    found = check_image(served.registry, Target(f"{served.host}/team/app", "1.0", ARM64))
    assert not found.ok and "config says linux/amd64" in found.detail


def test_a_refused_token_is_an_auth_failure(served: Served) -> None:
    good_multi_arch(served.state.recorded, "private/app", "1.0")
    served.state.refused_tokens.add("private/app")
    found = check_image(served.registry, Target(f"{served.host}/private/app", "1.0", ARM64))
    assert not found.ok
    assert found.detail == (
        f"{served.host}/private/app: manifest 1.0: 401 unauthorized (anonymous access "
        "refused: a private or missing repository)"
    )


def test_a_missing_tag_is_a_404(served: Served) -> None:
    good_multi_arch(served.state.recorded, "team/app", "1.0")
    found = check_image(served.registry, Target(f"{served.host}/team/app", "9.9", ARM64))
    assert not found.ok
    assert found.detail == (
        f"tag 9.9 does not resolve ({served.host}/team/app: manifest 9.9: 404 not found)"
    )


def test_a_manifest_that_does_not_match_its_digest_is_refused(served: Served) -> None:
    good_multi_arch(served.state.recorded, "team/app", "1.0")
    served.state.wrong_digest_header = True
    with pytest.raises(RegistryError) as raised:
        served.registry.manifest(Repository(served.host, "team/app"), "1.0")
    assert raised.value.kind is RegistryErrorKind.BAD_RESPONSE
    assert "hashes to sha256:" in str(raised.value)


def test_the_media_type_is_the_document_s_own_or_the_header_s(served: Served) -> None:
    recorded = served.state.recorded
    digest = good_multi_arch(recorded, "team/app", "1.0")["linux/amd64"]
    index = recorded.manifests[("team/app", "1.0")]
    fetched = served.registry.manifest(Repository(served.host, "team/app"), "1.0")
    assert fetched == Fetched(OCI_INDEX, index.content)
    # Without `mediaType` in the document, the Content-Type header says what it is.
    bare = json.loads(recorded.manifests[("team/app", digest)].content)
    media_type = bare.pop("mediaType")
    content = json.dumps(bare).encode()
    recorded.manifests[("team/app", "bare")] = Fetched(media_type, content)
    fetched = served.registry.manifest(Repository(served.host, "team/app"), "bare")
    assert fetched.media_type == media_type


def test_an_unreachable_registry_is_said_so() -> None:
    registry = DxfRegistry(timeout=5)
    with pytest.raises(RegistryError) as raised:
        registry.manifest(Repository("127.0.0.1:9", "team/app"), "1.0")
    assert raised.value.kind is RegistryErrorKind.UNREACHABLE
