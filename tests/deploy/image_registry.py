"""Registry answers for the image check, made here: manifests, indexes, configs and layers with
their real digests, shaped as Docker Hub and ghcr.io send them (the OCI and Docker media types,
BuildKit's `unknown/unknown` attestation entries in an index). No test reaches a registry:
`RecordedRegistry` answers at the `deploy.registry.Registry` seam, and
`tests.deploy.test_images_registry` serves the same answers over HTTPS on loopback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from deploy.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Fetched,
    RegistryError,
    RegistryErrorKind,
    Repository,
)

OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
E_MACHINE = {"amd64": 62, "arm64": 183, "s390x": 22}
CHUNK = 4096


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def elf_header(machine: int, *, big_endian: bool = False, elf_class: int = 2) -> bytes:
    """The 64-byte header of an ELF64 executable for `machine` (e_type ET_EXEC), as in elf(5)."""
    order = ">" if big_endian else "<"
    ident = b"\x7fELF" + bytes([elf_class, 2 if big_endian else 1, 1, 0]) + bytes(8)
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize,
    # e_phnum, e_shentsize, e_shnum, e_shstrndx
    fields = (2, machine, 1, 0x400000, 64, 0, 0, 64, 56, 0, 64, 0, 0)
    rest = struct.pack(f"{order}HHIQQQIHHHHHH", *fields)
    return ident + rest


@dataclass(frozen=True)
class Link:
    target: str
    hard: bool = False


File = bytes | Link


def layer(files: Mapping[str, File], *, padding: int = 0) -> bytes:
    """A gzipped tar layer; `padding` bytes of incompressible data follow the files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            if isinstance(content, Link):
                info.type = tarfile.LNKTYPE if content.hard else tarfile.SYMTYPE
                info.linkname = content.target
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
        if padding:
            noise = hashlib.shake_256(b"padding").digest(padding)
            info = tarfile.TarInfo("var/lib/padding.bin")
            info.size = len(noise)
            tar.addfile(info, io.BytesIO(noise))
    return gzip.compress(raw.getvalue(), mtime=0)


def config(arch: str, *, os: str = "linux", variant: str | None = None, **settings: Any) -> bytes:
    document: dict[str, Any] = {"architecture": arch, "os": os, "config": settings, "rootfs": {}}
    if variant:
        document["variant"] = variant
    return json.dumps(document).encode()


@dataclass
class RecordedRegistry:
    """A `deploy.registry.Registry` over stored answers; records what was read."""

    manifests: dict[tuple[str, str], Fetched] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)  # repository paths refused anonymous access
    blob_bytes_read: dict[str, int] = field(default_factory=dict)

    def manifest(self, repository: Repository, reference: str) -> Fetched:
        self._allowed(repository)
        found = self.manifests.get((repository.path, reference))
        if found is None:
            raise RegistryError(RegistryErrorKind.NOT_FOUND, f"manifest {reference}: 404")
        return found

    def blob(self, repository: Repository, digest: str) -> Iterator[bytes]:
        self._allowed(repository)
        content = self.blobs.get((repository.path, digest))
        if content is None:
            raise RegistryError(RegistryErrorKind.NOT_FOUND, f"blob {digest}: 404")
        self.blob_bytes_read.setdefault(digest, 0)
        for start in range(0, len(content), CHUNK):
            self.blob_bytes_read[digest] += len(content[start : start + CHUNK])
            yield content[start : start + CHUNK]

    def _allowed(self, repository: Repository) -> None:
        if repository.path in self.denied:
            raise RegistryError(RegistryErrorKind.DENIED, f"{repository.path}: 401 (anonymous)")

    # --- publishing ---------------------------------------------------------------------

    def add_blob(self, path: str, content: bytes) -> dict[str, Any]:
        self.blobs[(path, digest_of(content))] = content
        return {"digest": digest_of(content), "size": len(content)}

    def add_image(
        self,
        path: str,
        config_blob: bytes,
        layers: Sequence[bytes] = (),
        media_type: str = OCI_MANIFEST,
        layer_type: str = OCI_LAYER_GZIP,
    ) -> tuple[str, int]:
        """An image manifest; returns its digest and size."""
        document = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": OCI_CONFIG, **self.add_blob(path, config_blob)},
            "layers": [{"mediaType": layer_type, **self.add_blob(path, b)} for b in layers],
        }
        content = json.dumps(document, indent=3).encode()
        self.manifests[(path, digest_of(content))] = Fetched(media_type, content)
        return digest_of(content), len(content)

    def add_index(
        self,
        path: str,
        tag: str,
        entries: Sequence[tuple[str, str, int]],
        media_type: str = OCI_INDEX,
        attestation: bool = True,
    ) -> str:
        """An index under `tag` with (platform, digest, size) entries, plus (like BuildKit) an
        attestation manifest whose platform is unknown/unknown."""
        manifests = [
            {
                "mediaType": OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": _platform(platform),
            }
            for platform, digest, size in entries
        ]
        if attestation:
            manifests.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest_of(b"attestation"),
                    "size": 11,
                    "platform": {"architecture": "unknown", "os": "unknown"},
                }
            )
        content = json.dumps(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        ).encode()
        fetched = Fetched(media_type, content)
        self.manifests[(path, tag)] = fetched
        self.manifests[(path, fetched.digest)] = fetched
        return fetched.digest

    def publish(
        self,
        path: str,
        tag: str,
        builds: Mapping[str, bytes],
        layers: Mapping[str, Sequence[bytes]] | None = None,
        media_type: str = OCI_INDEX,
    ) -> dict[str, str]:
        """A multi-platform image: for each index platform, the config blob to serve. Returns
        the image manifest digest per platform."""
        digests: dict[str, str] = {}
        entries = []
        for platform, config_blob in builds.items():
            image_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
            digest, size = self.add_image(
                path, config_blob, (layers or {}).get(platform, ()), image_type
            )
            digests[platform] = digest
            entries.append((platform, digest, size))
        self.add_index(path, tag, entries, media_type)
        return digests


def _platform(text: str) -> dict[str, str]:
    os, arch, *variant = text.split("/")
    return {"architecture": arch, "os": os, **({"variant": variant[0]} if variant else {})}


def good_multi_arch(registry: RecordedRegistry, path: str, tag: str) -> dict[str, str]:
    """amd64, arm64/v8 and s390x builds, each config saying its own platform."""
    return registry.publish(
        path,
        tag,
        {
            "linux/amd64": config("amd64"),
            "linux/arm64/v8": config("arm64", variant="v8"),
            "linux/s390x": config("s390x"),
        },
    )
