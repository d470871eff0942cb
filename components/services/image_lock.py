"""`images.lock`: the digest each image was checked at, per platform; the program pulls those.

`python -m deploy images --lock` writes the file after checking every image the stack pulls
(the tag resolves, its index has the host's platform, that entry's config says the same
architecture). While the file exists, each `RemoteImage` names `repository@sha256:…` for its
platform, so a re-pushed tag cannot change what runs; without the file, the tags are pulled as
the catalog (or `ai-swarm:services.<name>.image`) names them. An image the lock does not cover
is pulled by its tag, and the policy pack's `digest-pinned-images` warns about it.

`deploy.images` writes the file with the same code the program reads it with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pulumi
import yaml

LOCK_FILE: Final = Path(__file__).resolve().parents[2] / "images.lock"
HEADER: Final = (
    "# Written by `python -m deploy images --lock`: the digest each image was checked at, per\n"
    "# platform. While this file exists the program pulls repository@digest. Do not edit by hand:\n"
    "# run the command again after changing a tag.\n"
)
DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
# Docker's reference grammar, reduced to what a catalog entry or an override can be:
# [registry/]path[:tag][@sha256:…]. The registry is the first part when it has a dot or a port,
# or is `localhost` (Docker's own rule for telling a registry from a Docker Hub namespace).
_REFERENCE = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9._-]*(?::[0-9]+(?=/))?(?:/[a-z0-9][a-z0-9._-]*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class LockError(Exception):
    """The lock file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ImageReference:
    """`repository[:tag][@digest]` split; `repository` is as written (no `docker.io/library/`)."""

    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        match = _REFERENCE.match(text)
        if match is None:
            raise ValueError(f"not an image reference: {text!r}")
        return cls(match["repository"], match["tag"], match["digest"])

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.repository}{tag}{digest}"


@dataclass(frozen=True)
class LockEntry:
    image: str  # the repository, as the catalog writes it
    tag: str
    platform: str  # os/architecture[/variant], as the RemoteImage's `platform`
    digest: str  # the platform's image manifest, which `docker pull repository@digest` fetches

    @property
    def pinned(self) -> str:
        return f"{self.image}@{self.digest}"


_FIELDS: Final = ("image", "tag", "platform", "digest")


def read_lock(path: Path | None = None) -> tuple[LockEntry, ...] | None:
    """The lock's entries, or None when there is no lock file."""
    path = path or LOCK_FILE
    if not path.exists():
        return None
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise LockError(f"{path.name} is not YAML: {error}") from None
    items = document.get("images") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise LockError(f"{path.name} must be a mapping with a list `images`")
    entries = [_entry(path.name, n, item) for n, item in enumerate(items, start=1)]
    seen: set[tuple[str, str, str]] = set()
    for entry in entries:
        key = (entry.image, entry.tag, entry.platform)
        if key in seen:
            raise LockError(
                f"{path.name}: {entry.image}:{entry.tag} for {entry.platform} is listed twice"
            )
        seen.add(key)
    return tuple(entries)


def _entry(file: str, number: int, item: Any) -> LockEntry:
    if not isinstance(item, dict) or sorted(item) != sorted(_FIELDS):
        raise LockError(f"{file}: entry {number} must have exactly {', '.join(_FIELDS)}")
    values = {name: item[name] for name in _FIELDS}
    if not all(isinstance(value, str) and value for value in values.values()):
        raise LockError(f"{file}: entry {number}: every field must be a non-empty string")
    if not DIGEST.match(values["digest"]):
        raise LockError(
            f"{file}: entry {number}: digest {values['digest']!r} is not sha256:<64 hex>"
        )
    match = _REFERENCE.match(f"{values['image']}:{values['tag']}")
    if match is None or match["digest"] or match["tag"] != values["tag"]:
        raise LockError(
            f"{file}: entry {number}: {values['image']}:{values['tag']} is no image tag"
        )
    return LockEntry(**values)


def write_lock(entries: Iterable[LockEntry], path: Path | None = None) -> Path:
    """Replace the lock with `entries`, sorted so that a re-run changes only moved digests."""
    path = path or LOCK_FILE
    ordered = sorted(set(entries), key=lambda e: (e.image, e.tag, e.platform))
    body = yaml.safe_dump(
        {"images": [{name: getattr(e, name) for name in _FIELDS} for e in ordered]},
        sort_keys=False,
        default_flow_style=False,
    )
    path.write_text(HEADER + body)
    return path


def lock_index(entries: Iterable[LockEntry]) -> Mapping[tuple[str, str], LockEntry]:
    """Entries by (`repository:tag`, platform)."""
    return {(f"{e.image}:{e.tag}", e.platform): e for e in entries}


def pinned_reference(reference: str, platform: str, path: Path | None = None) -> str:
    """What the program pulls: `repository@digest` from the lock when it has the image for
    `platform`, else `reference` unchanged (no lock, an image it does not cover, or a
    reference that already names a digest)."""
    try:
        entries = read_lock(path)
    except LockError as error:
        raise pulumi.RunError(f"{error}; fix it with `python -m deploy images --lock`") from None
    if entries is None:
        return reference
    found = lock_index(entries).get((reference, platform))
    return found.pinned if found else reference
