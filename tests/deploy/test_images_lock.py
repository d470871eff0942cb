"""images.lock: written and read back, refused when broken, and what the program pulls with it
(run under mocks: the names the Docker provider would be asked to pull)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ai_swarm_policies.contract import REMOTE_IMAGE
from components.services import image_lock
from components.services.catalog import CONFIGURABLE
from components.services.image_lock import LockEntry, LockError, read_lock, write_lock
from dryrun.engine import ProgramError, run_program

ARM64 = "linux/arm64"
DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "images.lock"
    monkeypatch.setattr(image_lock, "LOCK_FILE", path)
    return path


def test_the_lock_round_trips_sorted_and_stable(lock: Path) -> None:
    entries = [
        LockEntry("redis", "7.4.5-alpine", ARM64, DIGEST_A),
        LockEntry("ghcr.io/berriai/litellm", "v1.88.0", ARM64, DIGEST_B),
        LockEntry("redis", "7.4.5-alpine", "linux/amd64", DIGEST_B),
    ]
    write_lock(entries)
    first = lock.read_text()
    assert read_lock() == (entries[1], entries[2], entries[0])
    assert first.startswith("# Written by `python -m deploy images --lock`")
    assert yaml.safe_load(first)["images"][0] == {
        "image": "ghcr.io/berriai/litellm",
        "tag": "v1.88.0",
        "platform": ARM64,
        "digest": DIGEST_B,
    }
    write_lock(reversed(entries))
    assert lock.read_text() == first


def test_no_lock_file_is_no_lock(lock: Path) -> None:
    assert read_lock() is None


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("images: {}\n", "must be a mapping with a list `images`"),
        ("- a\n", "must be a mapping with a list `images`"),
        ("images: [\n", "is not YAML"),
        (
            "images:\n- {image: redis, tag: '7', platform: linux/arm64}\n",
            "entry 1 must have exactly image, tag, platform, digest",
        ),
        (
            f"images:\n- {{image: redis, tag: '7', platform: p, digest: {DIGEST_A}, x: 1}}\n",
            "entry 1 must have exactly",
        ),
        (
            "images:\n- {image: redis, tag: '7', platform: linux/arm64, digest: 'sha256:abc'}\n",
            "entry 1: digest 'sha256:abc' is not sha256:<64 hex>",
        ),
        (
            f"images:\n- {{image: Redis, tag: '7', platform: linux/arm64, digest: '{DIGEST_A}'}}\n",
            "entry 1: Redis:7 is no image tag",
        ),
        (
            f"images:\n- {{image: redis, tag: 7, platform: linux/arm64, digest: '{DIGEST_A}'}}\n",
            "entry 1: every field must be a non-empty string",
        ),
        (
            "images:\n"
            f"- {{image: redis, tag: '7', platform: linux/arm64, digest: '{DIGEST_A}'}}\n"
            f"- {{image: redis, tag: '7', platform: linux/arm64, digest: '{DIGEST_B}'}}\n",
            "redis:7 for linux/arm64 is listed twice",
        ),
    ],
)
def test_a_broken_lock_is_refused_naming_the_entry(lock: Path, text: str, complaint: str) -> None:
    lock.write_text(text)
    with pytest.raises(
        LockError, match=complaint.replace("(", r"\(").replace("[", r"\[")
    ) as raised:
        read_lock()
    assert str(raised.value).startswith("images.lock")


# --- the program under mocks ----------------------------------------------------------------


def pulled(overrides: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """RemoteImage name and platform, by resource name, as the program registers them."""
    run = run_program(overrides=overrides)
    return {r.name: (r.inputs["name"], r.inputs["platform"]) for r in run.of_type(REMOTE_IMAGE)}


def test_without_a_lock_the_program_pulls_the_catalog_tags(lock: Path) -> None:
    assert pulled() == {f"{key}-image": (e.image, ARM64) for key, e in CONFIGURABLE.items()}


def test_with_a_lock_the_program_pulls_the_locked_digest_for_its_platform(lock: Path) -> None:
    write_lock(
        [
            LockEntry("postgres", "15.14-alpine", ARM64, DIGEST_A),
            # A digest locked for another platform is not what an arm64 host pulls.
            LockEntry("redis", "7.4.5-alpine", "linux/amd64", DIGEST_B),
            # Nor is a digest locked for another tag.
            LockEntry("openbao/openbao", "2.7.1", ARM64, DIGEST_B),
        ]
    )
    images = pulled()
    assert images["postgres-image"] == (f"postgres@{DIGEST_A}", ARM64)
    assert images["redis-image"] == ("redis:7.4.5-alpine", ARM64)
    assert images["vault-image"] == ("openbao/openbao:2.7.2", ARM64)


def test_an_image_override_is_locked_by_its_own_tag(lock: Path) -> None:
    write_lock(
        [
            LockEntry("redis", "7.4.5-alpine", ARM64, DIGEST_A),
            LockEntry("redis", "7.4.6-alpine", ARM64, DIGEST_B),
        ]
    )
    images = pulled({"services": '{"redis": {"image": "redis:7.4.6-alpine"}}'})
    assert images["redis-image"] == (f"redis@{DIGEST_B}", ARM64)


def test_a_broken_lock_stops_the_program_with_the_fix(lock: Path) -> None:
    lock.write_text("images: nope\n")
    with pytest.raises(ProgramError) as raised:
        run_program()
    message = str(raised.value)
    assert "images.lock must be a mapping with a list `images`" in message
    assert "python -m deploy images --lock" in message
