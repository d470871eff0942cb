"""`python -m deploy images`: does every image the stack pulls run on its host's platform?

The images and platforms are the program's own: it is run under mocks (`dryrun.engine`) with
the stack's config, and each `RemoteImage` it registers gives a name and a platform (the host
the service is placed on decides the platform; the check follows whatever the program says).
For each one the registry is asked, anonymously:

1. the tag (or the digest `images.lock` pins) resolves;
2. an index (OCI image index or Docker manifest list) has an entry for the platform;
3. that entry's image config says the same `os` and `architecture` (an index can claim
   `linux/arm64` for an amd64 build: LiteLLM v1.83.14-stable, BerriAI/litellm#29382);
4. with `--deep`, the program the image starts (entrypoint, or its `#!` interpreter) is an ELF
   file for that machine (`deploy.elf`).

What it cannot prove: that the binaries behave (a build can be for the right machine and still
crash, or need a CPU feature the host lacks); only running the image on the host tells that.

`--lock` checks each tag as it is now and, when every image passes, writes what it checked to
`images.lock` (`components.services.image_lock`), which the program then pulls by digest.
While the lock exists, an image it does not cover fails the check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import dryrun  # noqa: F401 - puts the policy pack's package on sys.path, as the CLI runs it
from ai_swarm_policies.contract import REMOTE_IMAGE
from components.services import image_lock
from components.services.image_lock import (
    ImageReference,
    LockEntry,
    LockError,
    read_lock,
    write_lock,
)
from deploy.elf import MACHINES, DeepCheckError, find_entrypoint, machine_name
from deploy.ports import OperatorError
from deploy.registry import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Registry,
    RegistryError,
    RegistryErrorKind,
    Repository,
)
from dryrun.engine import PROJECT_DIR, ProgramError, run_program

LOCK_COMMAND: Final = "python -m deploy images --lock"
# Index entries that are not images (BuildKit's attestation manifests) use this platform.
_NOT_A_PLATFORM: Final = "unknown"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"not a platform (os/architecture[/variant]): {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Platform:
        """From an index entry's `platform` or an image config (the same three fields)."""
        variant = document.get("variant")
        return cls(str(document.get("os")), str(document.get("architecture")), variant or None)

    def accepts(self, other: Platform) -> bool:
        """Whether an image for `other` runs as this platform. arm64 is v8 unless it says."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return self.variant is None or _variant(self) == _variant(other)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def _variant(platform: Platform) -> str | None:
    return platform.variant or ("v8" if platform.architecture == "arm64" else None)


@dataclass(frozen=True)
class Target:
    """One image the program pulls, for one platform; `tag` is None for a digest-only name."""

    repository: str
    tag: str | None
    platform: str
    pinned: str | None = None  # the digest the program pulls instead of the tag

    @property
    def shown(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


@dataclass(frozen=True)
class ImageCheck:
    image: str
    tag: str | None
    platform: str
    digest: str | None  # the platform's image manifest that was checked
    ok: bool
    detail: str
    pinned: bool = False
    entrypoint: str | None = None  # with --deep: the chain that ends in the checked ELF file


@dataclass(frozen=True)
class ImagesReport:
    stack: str
    checks: tuple[ImageCheck, ...]
    lock: str | None = None  # the lock file written, if one was
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def document(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "images": [asdict(check) for check in self.checks],
            "lock": self.lock,
            "notes": list(self.notes),
            "ok": self.ok,
            "exitCode": self.exit_code,
        }


class _CheckFailedError(Exception):
    """One image failed a step; the message is the verdict's detail."""


# ---------------------------------------------------------------------------------------------
# What the program pulls


def program_targets(
    stack: str, lock: Sequence[LockEntry] | None, project_dir: Path | None = None
) -> list[Target]:
    """Every (image, platform) the program registers for `stack`, in registration order."""
    try:
        run = run_program(stack, project_dir=project_dir or PROJECT_DIR)
    except FileNotFoundError as error:
        raise OperatorError(str(error)) from None
    except ProgramError as error:
        raise OperatorError(f"the program stopped under mocks: {error}") from None
    pulled = [(r.inputs.get("name"), r.inputs.get("platform")) for r in run.of_type(REMOTE_IMAGE)]
    return targets_of(pulled, lock)


def targets_of(pulled: Iterable[tuple[Any, Any]], lock: Sequence[LockEntry] | None) -> list[Target]:
    """Targets from the (name, platform) pairs the program registered; a `repository@digest`
    the lock made is shown with the tag it was locked from."""
    by_pin = {(e.image, e.digest, e.platform): e for e in lock or ()}
    targets: list[Target] = []
    for name, platform in pulled:
        if not isinstance(name, str) or not isinstance(platform, str) or not platform:
            raise OperatorError(
                f"a RemoteImage has name {name!r} and platform {platform!r}: the check needs "
                "both as plain text"
            )
        try:
            reference = ImageReference.parse(name)
        except ValueError as error:
            raise OperatorError(f"a RemoteImage's name cannot be checked: {error}") from None
        locked = by_pin.get((reference.repository, reference.digest or "", platform))
        tag = locked.tag if locked and not reference.tag else reference.tag
        target = Target(reference.repository, tag, platform, reference.digest)
        if target not in targets:
            targets.append(target)
    return targets


# ---------------------------------------------------------------------------------------------
# The check


def check_image(
    registry: Registry, target: Target, *, deep: bool = False, follow_tag: bool = False
) -> ImageCheck:
    """Check one image for its platform: the pinned digest, or the tag with `follow_tag`."""
    use_pin = target.pinned is not None and not (follow_tag and target.tag)
    reference = target.pinned if use_pin else target.tag
    result = ImageCheck(target.repository, target.tag, target.platform, None, False, "", use_pin)
    if reference is None:
        return _with(result, detail="no tag and no digest: nothing to check")
    try:
        wanted = Platform.parse(target.platform)
        repository = Repository.of(target.repository)
        digest, manifest = _platform_manifest(registry, repository, reference, wanted)
        result = _with(result, digest=digest)
        config = _config(registry, repository, manifest)
        found = Platform.of(config)
        if not wanted.accepts(found):
            raise _CheckFailedError(
                f"the {wanted} entry's image config says {found}: the image was built for "
                "another platform (the LiteLLM #29382 case)"
            )
        entrypoint = None
        if deep:
            entrypoint = _check_entrypoint(registry, repository, manifest, config, wanted)
    except _CheckFailedError as failed:
        return _with(result, detail=str(failed))
    except RegistryError as error:
        return _with(result, detail=_registry_verdict(error, target, reference))
    except (DeepCheckError, ValueError, KeyError, TypeError) as error:
        return _with(result, detail=f"cannot check: {error}")
    detail = f"config says {found}" + (f"; runs {entrypoint}" if entrypoint else "")
    return _with(result, ok=True, detail=detail, entrypoint=entrypoint)


def _with(check: ImageCheck, **changes: Any) -> ImageCheck:
    return ImageCheck(**{**asdict(check), **changes})


def _platform_manifest(
    registry: Registry, repository: Repository, reference: str, wanted: Platform
) -> tuple[str, dict[str, Any]]:
    """The digest and document of the image manifest for `wanted` that `reference` leads to."""
    top = registry.manifest(repository, reference)
    if top.media_type in MANIFEST_TYPES:
        return top.digest, top.document()  # one platform only: its config says which
    if top.media_type not in INDEX_TYPES:
        raise _CheckFailedError(f"{reference} is a {top.media_type or 'manifest of no media type'}")
    entries = [e for e in top.document().get("manifests") or [] if isinstance(e, dict)]
    platforms = [(Platform.of(e.get("platform") or {}), e) for e in entries]
    matching = [e for p, e in platforms if wanted.accepts(p)]
    if not matching:
        listed = sorted({str(p) for p, _ in platforms if p.os != _NOT_A_PLATFORM})
        raise _CheckFailedError(
            f"the index has no {wanted} entry (it has {', '.join(listed) or 'none'})"
        )
    digest = str(matching[0]["digest"])
    image = registry.manifest(repository, digest)
    if image.media_type not in MANIFEST_TYPES:
        raise _CheckFailedError(
            f"the {wanted} entry {digest} is a {image.media_type}, not an image"
        )
    return digest, image.document()


def _config(registry: Registry, repository: Repository, manifest: Mapping[str, Any]) -> Any:
    descriptor = manifest.get("config") or {}
    content = b"".join(registry.blob(repository, str(descriptor["digest"])))
    return json.loads(content)


def _check_entrypoint(
    registry: Registry,
    repository: Repository,
    manifest: Mapping[str, Any],
    config: Mapping[str, Any],
    wanted: Platform,
) -> str:
    found = find_entrypoint(registry, repository, manifest, config)
    expected = MACHINES.get(wanted.architecture)
    if expected is None:
        raise _CheckFailedError(f"--deep knows no ELF machine type for {wanted.architecture}")
    if found.machine != expected:
        raise _CheckFailedError(
            f"{found.shown} is built for {machine_name(found.machine)}, not "
            f"{machine_name(expected)} ({wanted})"
        )
    return f"{found.shown} ({machine_name(found.machine)})"


def _registry_verdict(error: RegistryError, target: Target, reference: str) -> str:
    if error.kind is RegistryErrorKind.NOT_FOUND and reference == target.tag:
        return f"tag {target.tag} does not resolve ({error})"
    if error.kind is RegistryErrorKind.NOT_FOUND:
        return f"{reference} is not in the registry ({error})"
    return str(error)


def check_targets(
    registry: Registry,
    stack: str,
    targets: Sequence[Target],
    lock: Sequence[LockEntry] | None,
    *,
    deep: bool = False,
    write: Path | None = None,
) -> ImagesReport:
    """Check every target; with `write`, check the tags as they are now and write the lock
    there when all pass. Without it, while a lock exists, an image it does not pin fails."""
    checks = [check_image(registry, t, deep=deep, follow_tag=write is not None) for t in targets]
    if write is None and lock is not None:
        checks = [
            c
            if c.pinned or not c.ok
            else _with(c, ok=False, detail=f"not in images.lock: run `{LOCK_COMMAND}`")
            for c in checks
        ]
    notes: list[str] = []
    written = None
    if write is not None:
        if all(c.ok for c in checks):
            entries = [
                LockEntry(c.image, c.tag, c.platform, c.digest)
                for c in checks
                if c.tag is not None and c.digest is not None
            ]
            written = str(write_lock(entries, write))
        else:
            notes.append("the lock was not written: an image failed")
    return ImagesReport(stack, tuple(checks), written, tuple(notes))


def run_images_check(
    registry: Registry,
    stack: str,
    *,
    deep: bool = False,
    lock: bool = False,
    project_dir: Path | None = None,
) -> ImagesReport:
    """What `python -m deploy images` and the check before `up` do. The lock is the file the
    program reads (`image_lock.LOCK_FILE`), so the check sees what the program pulls."""
    path = image_lock.LOCK_FILE
    try:
        entries = read_lock(path)
    except LockError as error:
        raise OperatorError(
            f"{error}; delete it and run `{LOCK_COMMAND}` to write it again"
        ) from None
    targets = program_targets(stack, entries, project_dir)
    return check_targets(registry, stack, targets, entries, deep=deep, write=path if lock else None)
