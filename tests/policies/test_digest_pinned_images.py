"""digest-pinned-images, through the analyzer servicer and on the program's own registrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.runtime.proto import analyzer_pb2

from ai_swarm_policies.contract import REMOTE_IMAGE
from components.services import image_lock
from components.services.image_lock import LockEntry, write_lock
from dryrun.engine import Registration, run_program
from dryrun.policy import evaluate
from dryrun.synthetic import container, remote_image
from tests.policies.policy_requests import analyze, analyzer, of_policy

POLICY = "digest-pinned-images"
DIGEST = "sha256:" + "4" * 64


def _messages(registration: Registration) -> list[str]:
    found = of_policy(analyze(analyzer(), registration), POLICY)
    assert all(d.enforcementLevel == analyzer_pb2.ADVISORY for d in found)
    return [d.message for d in found]


@pytest.mark.parametrize(
    "image", ["redis:7.4.5-alpine", "ghcr.io/berriai/litellm:v1.88.0", "localhost:5000/app:1"]
)
def test_an_image_named_by_tag_gets_an_advisory(image: str) -> None:
    [message] = _messages(remote_image("img", image))
    assert f"Image '{image}' of 'img' is not pinned by digest" in message
    assert "python -m deploy images --lock" in message


@pytest.mark.parametrize(
    "image", [f"redis@{DIGEST}", f"redis:7.4.5-alpine@{DIGEST}", f"localhost:5000/app@{DIGEST}"]
)
def test_an_image_named_by_digest_passes(image: str) -> None:
    assert _messages(remote_image("img", image)) == []


def test_a_digest_that_is_not_sha256_hex_does_not_count() -> None:
    assert len(_messages(remote_image("img", "redis@sha256:abc"))) == 1


def test_a_container_is_judged_by_a_plain_image_name_and_not_by_an_image_id() -> None:
    assert len(_messages(container("db", image="postgres:15.14-alpine"))) == 1
    assert _messages(container("db", image=DIGEST)) == []


def test_the_program_gets_the_advisory_without_a_lock_and_none_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_lock, "LOCK_FILE", tmp_path / "images.lock")
    unlocked = run_program()
    images = unlocked.of_type(REMOTE_IMAGE)
    flagged = {d.urn for d in evaluate(unlocked.registrations).of_policy(POLICY)}
    assert flagged == {r.urn for r in images}
    # Lock every image the program pulls; then nothing is flagged.
    entries = []
    for number, image in enumerate(images):
        repository, _, tag = image.inputs["name"].rpartition(":")
        digest = f"sha256:{number:064x}"
        entries.append(LockEntry(repository, tag, image.inputs["platform"], digest))
    write_lock(entries, image_lock.LOCK_FILE)
    locked = run_program()
    assert evaluate(locked.registrations).of_policy(POLICY) == ()
