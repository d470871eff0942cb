"""The image check on recorded registry answers: what passes, what fails and how it says so,
the lock it writes, and the command's table, JSON and exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from components.services import image_lock
from components.services.image_lock import LockEntry, read_lock, write_lock
from deploy import cli, images
from deploy.images import Target, check_image, check_targets, targets_of
from deploy.ports import OperatorError
from deploy.registry import DOCKER_MANIFEST_LIST, OCI_INDEX, Repository
from tests.deploy.image_registry import RecordedRegistry, config, good_multi_arch

ARM64 = "linux/arm64"
PROJECT = Path(__file__).resolve().parents[2]


def target(
    repository: str, tag: str | None, platform: str = ARM64, pinned: str | None = None
) -> Target:
    return Target(repository, tag, platform, pinned)


@pytest.fixture
def registry() -> RecordedRegistry:
    return RecordedRegistry()


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_a_good_multi_arch_image_passes_with_its_arm64_digest(
    registry: RecordedRegistry, media_type: str
) -> None:
    built = registry.publish(
        "library/redis",
        "7.4.5-alpine",
        {"linux/amd64": config("amd64"), "linux/arm64/v8": config("arm64", variant="v8")},
        media_type=media_type,
    )
    found = check_image(registry, target("redis", "7.4.5-alpine"))
    assert found.ok, found.detail
    assert found.digest == built["linux/arm64/v8"]
    assert found.detail == "config says linux/arm64/v8"


def test_the_platform_comes_from_the_target_not_a_constant(registry: RecordedRegistry) -> None:
    built = good_multi_arch(registry, "library/postgres", "15.14-alpine")
    found = check_image(registry, target("postgres", "15.14-alpine", "linux/amd64"))
    assert (found.ok, found.digest) == (True, built["linux/amd64"])


def test_an_index_without_arm64_fails_and_lists_what_it_has(registry: RecordedRegistry) -> None:
    registry.publish(
        "open-webui/pipelines",
        "git-adec657",
        {"linux/amd64": config("amd64"), "linux/s390x": config("s390x")},
    )
    found = check_image(registry, target("ghcr.io/open-webui/pipelines", "git-adec657"))
    assert not found.ok
    # The attestation entry (unknown/unknown) is not a platform the index offers.
    assert found.detail == "the index has no linux/arm64 entry (it has linux/amd64, linux/s390x)"
    assert found.digest is None


def test_an_arm64_entry_whose_config_says_amd64_fails(registry: RecordedRegistry) -> None:
    # BerriAI/litellm#29382: amd64 binaries published under the arm64 entry.
    built = registry.publish(
        "berriai/litellm",
        "v1.83.14-stable",
        {"linux/amd64": config("amd64"), "linux/arm64": config("amd64")},
    )
    found = check_image(registry, target("ghcr.io/berriai/litellm", "v1.83.14-stable"))
    assert not found.ok
    assert found.digest == built["linux/arm64"]
    assert "the linux/arm64 entry's image config says linux/amd64" in found.detail
    assert "#29382" in found.detail


def test_a_single_platform_manifest_is_judged_by_its_config(registry: RecordedRegistry) -> None:
    arm, _ = registry.add_image("team/arm", config("arm64"))
    amd, _ = registry.add_image("team/amd", config("amd64"))
    registry.manifests[("team/arm", "1")] = registry.manifests[("team/arm", arm)]
    registry.manifests[("team/amd", "1")] = registry.manifests[("team/amd", amd)]
    assert check_image(registry, target("team/arm", "1")).ok
    found = check_image(registry, target("team/amd", "1"))
    assert not found.ok and "config says linux/amd64" in found.detail


def test_a_tag_that_does_not_exist_fails(registry: RecordedRegistry) -> None:
    good_multi_arch(registry, "library/redis", "7.4.5-alpine")
    found = check_image(registry, target("redis", "7.4.6-alpine"))
    assert not found.ok
    assert found.detail.startswith("tag 7.4.6-alpine does not resolve")


def test_an_auth_failure_fails_with_the_registry_s_word(registry: RecordedRegistry) -> None:
    registry.denied.add("private/app")
    found = check_image(registry, target("private/app", "1.0"))
    assert not found.ok
    assert "401 (anonymous)" in found.detail


def test_a_pinned_image_is_checked_at_its_digest_and_relocking_follows_the_tag(
    registry: RecordedRegistry,
) -> None:
    good = good_multi_arch(registry, "library/redis", "7.4.5-alpine")["linux/arm64/v8"]
    # The tag is pushed again, now without arm64: what is pinned still runs on the host.
    registry.publish("library/redis", "7.4.5-alpine", {"linux/amd64": config("amd64")})
    pinned = target("redis", "7.4.5-alpine", pinned=good)
    found = check_image(registry, pinned)
    assert (found.ok, found.digest, found.pinned) == (True, good, True)
    relocked = check_image(registry, pinned, follow_tag=True)
    assert not relocked.ok and "no linux/arm64 entry" in relocked.detail


def test_a_lost_pinned_digest_fails(registry: RecordedRegistry) -> None:
    missing = "sha256:" + "0" * 64
    found = check_image(registry, target("redis", "7.4.5-alpine", pinned=missing))
    assert not found.ok and found.detail.startswith(f"{missing} is not in the registry")


def test_docker_hub_names_map_to_its_api_host_and_library() -> None:
    assert Repository.of("postgres") == Repository("registry-1.docker.io", "library/postgres")
    assert Repository.of("prom/node-exporter") == Repository(
        "registry-1.docker.io", "prom/node-exporter"
    )
    assert Repository.of("docker.io/library/redis") == Repository(
        "registry-1.docker.io", "library/redis"
    )
    assert Repository.of("ghcr.io/berriai/litellm") == Repository("ghcr.io", "berriai/litellm")
    assert Repository.of("localhost:5000/app") == Repository("localhost:5000", "app")


# --- what the program pulls, and the lock ---------------------------------------------------

DIGEST_A = "sha256:" + "a" * 64


def test_targets_show_a_locked_digest_with_the_tag_it_was_locked_from() -> None:
    lock = [LockEntry("redis", "7.4.5-alpine", ARM64, DIGEST_A)]
    pulled = [
        (f"redis@{DIGEST_A}", ARM64),
        ("postgres:15.14-alpine", ARM64),
        ("postgres:15.14-alpine", ARM64),  # the same image on another host: checked once
        ("postgres:15.14-alpine", "linux/amd64"),
    ]
    assert targets_of(pulled, lock) == [
        Target("redis", "7.4.5-alpine", ARM64, DIGEST_A),
        Target("postgres", "15.14-alpine", ARM64),
        Target("postgres", "15.14-alpine", "linux/amd64"),
    ]


def test_an_image_without_a_platform_or_with_a_bad_name_cannot_be_checked() -> None:
    with pytest.raises(OperatorError, match="platform None"):
        targets_of([("redis:7.4.5-alpine", None)], None)
    with pytest.raises(OperatorError, match="not an image reference: 'Redis:7'"):
        targets_of([("Redis:7", ARM64)], None)


def test_lock_mode_writes_what_it_checked_and_only_when_all_pass(
    registry: RecordedRegistry, tmp_path: Path
) -> None:
    redis = good_multi_arch(registry, "library/redis", "7.4.5-alpine")
    postgres = good_multi_arch(registry, "library/postgres", "15.14-alpine")
    lock = tmp_path / "images.lock"
    targets = [target("redis", "7.4.5-alpine"), target("postgres", "15.14-alpine")]
    report = check_targets(registry, "oracle", targets, None, write=lock)
    assert report.ok and report.lock == str(lock)
    assert read_lock(lock) == (
        LockEntry("postgres", "15.14-alpine", ARM64, postgres["linux/arm64/v8"]),
        LockEntry("redis", "7.4.5-alpine", ARM64, redis["linux/arm64/v8"]),
    )
    broken = tmp_path / "broken.lock"
    failing = [*targets, target("redis", "8.0.0")]
    report = check_targets(registry, "oracle", failing, None, write=broken)
    assert not report.ok and report.lock is None and not broken.exists()
    assert report.notes == ("the lock was not written: an image failed",)


def test_with_a_lock_an_image_it_does_not_pin_fails(registry: RecordedRegistry) -> None:
    redis = good_multi_arch(registry, "library/redis", "7.4.5-alpine")["linux/arm64/v8"]
    good_multi_arch(registry, "library/postgres", "15.16-alpine")
    lock = [LockEntry("redis", "7.4.5-alpine", ARM64, redis)]
    targets = [target("redis", "7.4.5-alpine", pinned=redis), target("postgres", "15.16-alpine")]
    report = check_targets(registry, "oracle", targets, lock)
    assert [c.ok for c in report.checks] == [True, False]
    assert report.checks[1].detail == "not in images.lock: run `python -m deploy images --lock`"
    assert report.exit_code == 1


# --- the command ----------------------------------------------------------------------------


def catalog_registry() -> RecordedRegistry:
    """Every image the default stack pulls, each a good multi-arch build."""
    registry = RecordedRegistry()
    for name in (
        "postgres:15.14-alpine",
        "redis:7.4.5-alpine",
        "prom/node-exporter:v1.9.1",
        "ghcr.io/berriai/litellm:v1.88.0",
        "ghcr.io/open-webui/open-webui:v0.6.18",
        "ghcr.io/open-webui/pipelines:git-adec657",
        "openbao/openbao:2.7.2",
    ):
        repository, _, tag = name.rpartition(":")
        good_multi_arch(registry, Repository.of(repository).path, tag)
    return registry


def run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(args, console=Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def test_the_command_checks_what_the_program_pulls_and_prints_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(image_lock, "LOCK_FILE", tmp_path / "images.lock")
    registry = catalog_registry()
    # The program's LiteLLM pin is a #29382-like build: amd64 under the arm64 entry.
    registry.publish("berriai/litellm", "v1.88.0", {"linux/arm64": config("amd64")})
    monkeypatch.setattr(cli, "make_registry", lambda: registry)
    code, printed = run_cli(["images", "--json"])
    document = json.loads(printed)
    assert code == 1 and document["exitCode"] == 1
    verdicts = {(i["image"], i["tag"], i["platform"]): i["ok"] for i in document["images"]}
    assert verdicts == {
        ("postgres", "15.14-alpine", ARM64): True,
        ("redis", "7.4.5-alpine", ARM64): True,
        ("prom/node-exporter", "v1.9.1", ARM64): True,
        ("ghcr.io/berriai/litellm", "v1.88.0", ARM64): False,
        ("ghcr.io/open-webui/open-webui", "v0.6.18", ARM64): True,
        ("ghcr.io/open-webui/pipelines", "git-adec657", ARM64): True,
        ("openbao/openbao", "2.7.2", ARM64): True,
    }


def test_the_table_names_each_image_and_lock_writes_the_file_the_program_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lock = tmp_path / "images.lock"
    monkeypatch.setattr(image_lock, "LOCK_FILE", lock)
    registry = catalog_registry()
    monkeypatch.setattr(cli, "make_registry", lambda: registry)
    pulled = [("redis:7.4.5-alpine", ARM64), ("ghcr.io/berriai/litellm:v1.88.0", ARM64)]
    monkeypatch.setattr(
        images, "program_targets", lambda stack, lock, _=None: targets_of(pulled, lock)
    )
    code, printed = run_cli(["images", "--lock"])
    assert code == 0, printed
    rows = [line for line in printed.splitlines() if "linux/arm64" in line]
    assert len(rows) == 2 and all(" ok " in row for row in rows)
    assert "ghcr.io/berriai/litellm" in rows[1] and "v1.88.0" in rows[1]
    assert "all 2 image(s) pass" in printed
    assert f"wrote {lock}" in printed
    assert {(e.image, e.tag) for e in read_lock(lock) or ()} == {
        ("redis", "7.4.5-alpine"),
        ("ghcr.io/berriai/litellm", "v1.88.0"),
    }


def test_up_refuses_when_an_image_fails_unless_told_to_skip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(image_lock, "LOCK_FILE", tmp_path / "images.lock")
    registry = RecordedRegistry()
    registry.publish("library/redis", "7.4.5-alpine", {"linux/amd64": config("amd64")})
    monkeypatch.setattr(cli, "make_registry", lambda: registry)
    monkeypatch.setattr(
        images,
        "program_targets",
        lambda stack, lock, _=None: targets_of([("redis:7.4.5-alpine", ARM64)], lock),
    )
    opened: list[str] = []

    def open_stack(name: str, *, create: bool) -> None:
        opened.append(name)
        raise OperatorError("stop here: the stack would be opened")

    monkeypatch.setattr(cli, "open_stack", open_stack)
    code, printed = run_cli(["up", "--domains", "1"])
    assert code == 1 and opened == []
    assert "refusing to deploy" in printed and "no linux/arm64 entry" in printed
    assert "1 of 1 image(s) failed" in printed
    code, printed = run_cli(["up", "--domains", "1", "--skip-image-check"])
    assert opened == ["oracle"] and "stop here" in printed


def test_a_broken_lock_stops_the_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lock = tmp_path / "images.lock"
    monkeypatch.setattr(image_lock, "LOCK_FILE", lock)
    write_lock([LockEntry("redis", "7.4.5-alpine", ARM64, DIGEST_A)], lock)
    lock.write_text(lock.read_text().replace(DIGEST_A, "sha256:short"))
    monkeypatch.setattr(cli, "make_registry", RecordedRegistry)
    code, printed = run_cli(["images"])
    assert code == 1
    assert printed.strip().startswith("error: images.lock: entry 1: digest 'sha256:short'")


def test_the_workflow_runs_the_check_when_the_catalog_or_the_lock_changes() -> None:
    workflow = yaml.safe_load((PROJECT / ".github" / "workflows" / "images.yml").read_text())
    # PyYAML reads the key `on` as True (YAML 1.1).
    paths = workflow[True]["pull_request"]["paths"]
    assert {"components/services/catalog.py", "images.lock"} <= set(paths)
    # Every other path it watches exists: a renamed file would silently stop the check.
    for path in paths:
        assert path == "images.lock" or "*" in path or (PROJECT / path).exists(), path
    runs = [step.get("run", "") for step in workflow["jobs"]["images"]["steps"]]
    assert any("-m deploy images --stack oracle" in run for run in runs)


def test_images_help_needs_no_pulumi_cli_nor_a_registry(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deploy", "images", "--help"],
        cwd=PROJECT,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert all(flag in done.stdout for flag in ("--stack", "--deep", "--lock", "--json"))
