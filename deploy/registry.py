"""Registry access for `python -m deploy images`: the seam (`Registry`) and its implementation.

The implementation is python-dxf, a maintained Docker Registry v2 client, compared with:
`skopeo inspect` and `docker buildx imagetools inspect` (a Go binary or the Docker CLI on the
operator's machine, and neither streams one file out of a layer, which `--deep` needs), oras-py
(its client keeps one bearer token and, on a 401, sends the same token again, fetching a new one
only on a 403, so a second repository's request fails with the first one's token; and it does
not map `postgres` to `library/postgres`: oras/auth/token.py, oras/provider.py), and
docker-registry-client (last released in 2017). python-dxf scopes its client to one
repository, does the anonymous token flow (`WWW-Authenticate: Bearer realm=…` -> token ->
retry) that Docker Hub and ghcr.io ask for, streams blobs and checks their digests. It raises
its own `DXFUnauthorizedError` for any 401, the token endpoint's included.

Every answer is checked against its digest here too: a manifest fetched by digest must hash to
it, one fetched by tag to the registry's `Docker-Content-Digest`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol

import requests
from dxf import DXF
from dxf.exceptions import DXFError, DXFUnauthorizedError

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Docker Hub: the name Docker gives it, and the host its v2 API answers on.
DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
TIMEOUT_SECONDS: Final = 30.0


@dataclass(frozen=True)
class Repository:
    """Where an image's manifests and blobs are: the registry's API host and the path on it."""

    host: str
    path: str

    @classmethod
    def of(cls, repository: str) -> Repository:
        """Docker's rule: the first part is a registry when it has a dot or a port or is
        `localhost`; otherwise the image is on Docker Hub, official images under `library/`."""
        first, _, rest = repository.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, path = first, rest
        else:
            host, path = DOCKER_HUB, repository
        if host == DOCKER_HUB:
            host = DOCKER_HUB_API
            path = path if "/" in path else f"library/{path}"
        return cls(host, path)


@dataclass(frozen=True)
class Fetched:
    """A manifest as the registry sent it: its bytes and media type."""

    media_type: str
    content: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content).hexdigest()

    def document(self) -> dict[str, Any]:
        parsed = json.loads(self.content)
        if not isinstance(parsed, dict):
            raise RegistryError(RegistryErrorKind.BAD_RESPONSE, "a manifest that is not an object")
        return parsed


class RegistryErrorKind(enum.Enum):
    NOT_FOUND = "not found"
    DENIED = "denied"
    UNREACHABLE = "unreachable"
    BAD_RESPONSE = "bad response"


class RegistryError(Exception):
    def __init__(self, kind: RegistryErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Registry(Protocol):
    """What the image check asks of a registry; anonymous, read-only."""

    def manifest(self, repository: Repository, reference: str) -> Fetched:
        """The manifest or index a tag or digest names."""

    def blob(self, repository: Repository, digest: str) -> Iterator[bytes]:
        """A blob's bytes, streamed: stop iterating to stop the download."""


class DxfRegistry:
    """`Registry` on python-dxf; one client per repository, since tokens are per repository."""

    def __init__(self, tls_verify: bool | str = True, timeout: float = TIMEOUT_SECONDS) -> None:
        self._tls_verify = tls_verify
        self._timeout = timeout
        self._clients: dict[Repository, Any] = {}

    def _client(self, repository: Repository) -> Any:
        if repository not in self._clients:
            self._clients[repository] = DXF(
                repository.host,
                repository.path,
                auth=_anonymous,
                tlsverify=self._tls_verify,
                timeout=self._timeout,
            )
        return self._clients[repository]

    def manifest(self, repository: Repository, reference: str) -> Fetched:
        with _translated(repository, f"manifest {reference}"):
            _text, response = self._client(repository).get_manifest_and_response(reference)
        content: bytes = response.content
        media_type = _media_type(content, response.headers.get("Content-Type", ""))
        fetched = Fetched(media_type, content)
        expected = reference if reference.startswith("sha256:") else None
        expected = expected or response.headers.get("Docker-Content-Digest")
        if expected and expected != fetched.digest:
            raise RegistryError(
                RegistryErrorKind.BAD_RESPONSE,
                f"{repository.host}/{repository.path}: manifest {reference} hashes to "
                f"{fetched.digest}, not {expected}",
            )
        return fetched

    def blob(self, repository: Repository, digest: str) -> Iterator[bytes]:
        with _translated(repository, f"blob {digest}"):
            chunks = self._client(repository).pull_blob(digest, chunk_size=64 * 1024)
        return _translated_chunks(repository, digest, iter(chunks))


def _anonymous(client: Any, response: Any) -> None:
    """python-dxf's auth hook: answer the registry's Bearer challenge with an anonymous token."""
    client.authenticate(response=response)


def _media_type(content: bytes, content_type: str) -> str:
    try:
        declared = json.loads(content).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return str(declared or content_type.split(";", maxsplit=1)[0].strip())


@contextmanager
def _translated(repository: Repository, what: str) -> Iterator[None]:
    """Turns requests' and python-dxf's exceptions into `RegistryError`s that say what failed."""
    try:
        yield
    except Exception as error:
        translated = _translate(f"{repository.host}/{repository.path}: {what}", error)
        if translated is None:
            raise
        raise translated from None


_REFUSED: Final = "anonymous access refused: a private or missing repository"


def _translate(subject: str, error: BaseException) -> RegistryError | None:
    if isinstance(error, DXFUnauthorizedError):  # python-dxf's word for any 401
        return RegistryError(RegistryErrorKind.DENIED, f"{subject}: 401 unauthorized ({_REFUSED})")
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return _http_error(subject, error.response)
    if isinstance(error, requests.RequestException):
        return RegistryError(RegistryErrorKind.UNREACHABLE, f"{subject}: {error}")
    if isinstance(error, DXFError | ValueError | KeyError):
        return RegistryError(RegistryErrorKind.BAD_RESPONSE, f"{subject}: {error}")
    return None


def _http_error(subject: str, response: requests.Response) -> RegistryError:
    status = response.status_code
    where = response.url.split("?", maxsplit=1)[0]
    if status == 404:
        return RegistryError(RegistryErrorKind.NOT_FOUND, f"{subject}: 404 not found")
    if status in (401, 403):
        return RegistryError(
            RegistryErrorKind.DENIED, f"{subject}: {status} from {where} ({_REFUSED})"
        )
    return RegistryError(RegistryErrorKind.BAD_RESPONSE, f"{subject}: {status} from {where}")


def _translated_chunks(
    repository: Repository, digest: str, chunks: Iterator[bytes]
) -> Iterator[bytes]:
    with _translated(repository, f"blob {digest}"):
        try:
            yield from chunks
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
