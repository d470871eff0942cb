"""`--deep`: the machine type of the program an image starts, read from its layers.

The file the kernel executes first is the entrypoint (or, without one, the command's first
word): found on the image config's `PATH` or under its `WorkingDir`, followed through symlinks
(a directory symlink such as Debian's `/bin -> usr/bin` too) and, for a script, to its `#!`
interpreter. Layers are searched from the top, each streamed through `tarfile` until the file
appears (a whiteout hides it from the layers below), so only the start of the image's layers
is read, never the whole image. The header is the ELF one: `e_ident` (magic, class, byte order)
then `e_machine` at byte 18, in the file's byte order (System V ABI; `elf(5)`); that is two
fields, so `struct` reads them rather than an ELF library, which would want a seekable file.
"""

from __future__ import annotations

import io
import posixpath
import struct
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from deploy.registry import Registry, Repository

ELF_MAGIC: Final = b"\x7fELF"
# e_machine by the architecture names of the OCI image spec (Go's GOARCH).
MACHINES: Final[Mapping[str, int]] = {
    "386": 3,
    "amd64": 62,
    "arm": 40,
    "arm64": 183,
    "ppc64le": 21,
    "riscv64": 243,
    "s390x": 22,
}
MACHINE_NAMES: Final[Mapping[int, str]] = {
    3: "x86 (i386)",
    62: "x86-64",
    40: "ARM (32-bit)",
    183: "AArch64",
    21: "PowerPC 64",
    243: "RISC-V",
    22: "S/390",
}
# The PATH Docker gives a container whose image sets none.
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READABLE_LAYERS: Final = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    }
)
MAX_HOPS: Final = 12  # symlinks and interpreters followed before giving up
HEAD_BYTES: Final = 256


class DeepCheckError(Exception):
    """The program could not be found or read; the message says how far the search got."""


def elf_machine(header: bytes) -> int | None:
    """`e_machine` of an ELF header, or None when `header` is not one."""
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return None
    byte_order = {1: "<", 2: ">"}.get(header[5])
    if byte_order is None:
        return None
    (machine,) = struct.unpack_from(f"{byte_order}H", header, 18)
    return int(machine)


def machine_name(machine: int) -> str:
    return MACHINE_NAMES.get(machine, f"machine {machine}")


@dataclass(frozen=True)
class Entrypoint:
    """The chain from the first word of the command to the ELF file the kernel loads."""

    chain: tuple[str, ...]
    machine: int

    @property
    def shown(self) -> str:
        return " -> ".join(self.chain)


def first_program(config: Mapping[str, Any]) -> tuple[str, Sequence[str], str]:
    """The entrypoint's (or command's) first word, the image's PATH dirs and working dir."""
    settings = config.get("config") or {}
    argv = [*(settings.get("Entrypoint") or []), *(settings.get("Cmd") or [])]
    if not argv:
        raise DeepCheckError("the image config names no entrypoint and no command")
    env = dict(item.partition("=")[::2] for item in settings.get("Env") or [])
    path = env.get("PATH") or DEFAULT_PATH
    return str(argv[0]), [d for d in path.split(":") if d], settings.get("WorkingDir") or "/"


def find_entrypoint(
    registry: Registry,
    repository: Repository,
    manifest: Mapping[str, Any],
    config: Mapping[str, Any],
) -> Entrypoint:
    """Follow the image's first program to an ELF file and return its machine type."""
    program, path_dirs, workdir = first_program(config)
    layers = Layers(registry, repository, manifest.get("layers") or [])
    if "/" in program:
        candidates = [posixpath.normpath(posixpath.join(workdir, program))]
    else:
        candidates = [posixpath.join(d, program) for d in path_dirs]
    chain = [program]
    found = layers.first_of(candidates)
    if found is None:
        raise DeepCheckError(f"{program} is not in the image (searched {', '.join(candidates)})")
    for _ in range(MAX_HOPS):
        path, head, link = found
        if path != chain[-1]:
            chain.append(path)
        if link is not None:
            found = layers.first_of([link])
            if found is None:
                raise DeepCheckError(f"{' -> '.join(chain)} -> {link}: not in the image")
            continue
        machine = elf_machine(head)
        if machine is not None:
            return Entrypoint(tuple(chain), machine)
        if not head.startswith(b"#!"):
            raise DeepCheckError(f"{' -> '.join(chain)} is neither an ELF file nor a script")
        words = head[2:].split(b"\n", 1)[0].split()
        if not words:
            raise DeepCheckError(f"{' -> '.join(chain)}: a `#!` line without an interpreter")
        interpreter = words[0].decode(errors="replace")
        chain.append(interpreter)
        found = layers.first_of([interpreter])
        if found is None:
            raise DeepCheckError(f"{' -> '.join(chain)}: the interpreter is not in the image")
    raise DeepCheckError(f"{' -> '.join(chain)}: more than {MAX_HOPS} links or interpreters")


# (path as found, the file's first bytes, or the path a link leads to)
_Found = tuple[str, bytes, str | None]


class Layers:
    """The image's files, looked up from the top layer down, each layer streamed."""

    def __init__(
        self, registry: Registry, repository: Repository, layers: Sequence[Mapping[str, Any]]
    ) -> None:
        self._registry = registry
        self._repository = repository
        self._layers = list(reversed(layers))  # the manifest lists them base first

    def first_of(self, paths: Sequence[str]) -> _Found | None:
        """The first of `paths` (in their order, as a PATH search goes) that the image has, as
        the top layer that holds it says. Layers are read only until that is decided."""
        wanted = [posixpath.normpath("/" + p).lstrip("/") for p in paths]
        hidden: set[str] = set()  # deleted by a whiteout: absent whatever the layers below hold
        resolved: dict[str, _Found] = {}
        for layer in self._layers:
            best = next((n for n, p in enumerate(wanted) if p in resolved), len(wanted))
            if best < len(wanted) and all(p in hidden for p in wanted[:best]):
                break
            pending = [p for p in wanted if p not in resolved and p not in hidden]
            if not pending:
                break
            resolved.update(self._scan(layer, pending, hidden))
        return next((resolved[p] for p in wanted if p in resolved), None)

    def _scan(
        self, layer: Mapping[str, Any], wanted: Sequence[str], hidden: set[str]
    ) -> dict[str, _Found]:
        media_type = str(layer.get("mediaType"))
        if media_type not in READABLE_LAYERS:
            raise DeepCheckError(f"cannot read a layer of type {media_type}")
        chunks = self._registry.blob(self._repository, str(layer["digest"]))
        hits: dict[str, _Found] = {}
        open_paths = list(wanted)
        try:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|*") as tar:
                for member in tar:
                    for path in open_paths:
                        if path in hits:
                            continue
                        found = _match(tar, member, path, hidden=hidden)
                        if found is not None:
                            hits[path] = found
                    if all(p in hits or p in hidden for p in open_paths):
                        break
        except tarfile.TarError as error:
            raise DeepCheckError(f"layer {layer['digest']}: {error}") from None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return hits


def _match(
    tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, *, hidden: set[str]
) -> _Found | None:
    """What `member` says about `path`: the file, a link to follow, or (a whiteout) that it
    is deleted from the layers below, which goes into `hidden`."""
    name = posixpath.normpath("/" + member.name).lstrip("/")
    directory, base = posixpath.split(path)
    whiteouts = {posixpath.join(directory, w) for w in (f".wh.{base}", ".wh..wh..opq")}
    if name in whiteouts:
        hidden.add(path)
        return None
    link: str | None = None
    if name == path and member.issym():
        link = _resolve(path, member.linkname)
    elif name == path and member.islnk():
        link = "/" + posixpath.normpath(member.linkname).lstrip("/")
    elif name == path and member.isfile():
        handle = tar.extractfile(member)
        return f"/{path}", handle.read(HEAD_BYTES) if handle else b"", None
    elif path.startswith(name + "/") and member.issym():
        # A directory on the way is a symlink (`bin -> usr/bin`): look up the path it means.
        link = posixpath.join(_resolve(name, member.linkname), path[len(name) + 1 :])
    return None if link is None else (f"/{path}", b"", link)


def _resolve(path: str, target: str) -> str:
    base = "/" if target.startswith("/") else "/" + posixpath.dirname(path)
    return posixpath.normpath(posixpath.join(base, target))


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, for `tarfile`'s stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
