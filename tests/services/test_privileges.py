"""Every container drops ALL capabilities, gains no privileges, and adds back only its table entry.

Each container runs as its table user (Docker's `user`), and its data-dir command hands the
directory to that same uid:gid; with the real tools, a process of that user holding no
capability keeps its state there, and one of another uid cannot.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.services.catalog import CATALOG, CONFIGURABLE
from components.services.privileges import NO_NEW_PRIVILEGES, PRIVILEGES, ROOT
from dryrun.engine import ProgramRun
from tests.services.readers import COMMAND, container

# The containers of the default stack (the replica's one is checked in tests/test_replica.py).
IDS = [name for entry in CONFIGURABLE.values() for name in entry.containers]
# Changing capability sets and owners needs root: others get it through passwordless sudo.
AS_ROOT: tuple[str, ...] = () if os.geteuid() == 0 else ("sudo", "-n")
COMMAND_TIMEOUT_S = 30
DATA = "/mnt/data/"


def test_the_table_covers_exactly_the_catalogs_containers() -> None:
    assert set(PRIVILEGES) == {name for entry in CATALOG.values() for name in entry.containers}


@pytest.mark.parametrize("name", IDS)
def test_container_drops_all_and_adds_back_only_its_entry(free_run: ProgramRun, name: str) -> None:
    inputs = container(free_run, name).inputs
    assert inputs["capabilities"] == {
        "drops": ["ALL"],
        "adds": PRIVILEGES[name].capability_names,
    }
    assert inputs["securityOpts"] == [NO_NEW_PRIVILEGES]
    assert "privileged" not in inputs or inputs["privileged"] is False


@pytest.mark.parametrize("name", IDS)
def test_every_capability_is_a_real_one_with_a_reason_and_a_source(name: str) -> None:
    entry = PRIVILEGES[name]
    known = set(_known_capabilities())
    for capability in entry.capabilities:
        assert capability.name in known, capability.name
        assert capability.reason.strip()
    assert entry.sources and all(source.strip() for source in entry.sources)


@pytest.mark.parametrize("name", IDS)
def test_secret_uploads_are_the_service_users_and_owner_only(
    free_run: ProgramRun, name: str
) -> None:
    user = PRIVILEGES[name].runs_as
    registration = container(free_run, name)
    uploads = registration.inputs.get("uploads", [])
    for upload in uploads:
        if upload.get("permissions") is None:
            continue
        # Owner-only (0600, or 0400 for a file nobody rewrites), and the service user's.
        assert int(upload["permissions"], 8) & 0o077 == 0, upload["file"]
        assert (upload["owner"], upload["group"]) == (str(user.uid), str(user.gid)), upload["file"]


# Every file that holds a generated secret, by container; each must be owner-only.
SECRET_FILES = {
    "postgres": ["/docker-entrypoint-initdb.d/10-ai-swarm-roles.sql"],
    "redis": ["/usr/local/etc/redis/redis.conf"],
    "redis-sentinel": ["/data/sentinel.conf"],
}


@pytest.mark.parametrize("name", sorted(SECRET_FILES))
def test_files_holding_secrets_are_written_0600(free_run: ProgramRun, name: str) -> None:
    user = PRIVILEGES[name].runs_as
    uploads = {u["file"]: u for u in container(free_run, name).inputs["uploads"]}
    for path in SECRET_FILES[name]:
        assert uploads[path]["permissions"] == "0600"
        assert uploads[path]["owner"] == str(user.uid)
        assert uploads[path]["group"] == str(user.gid)


@pytest.mark.parametrize("name", IDS)
def test_every_container_runs_as_its_table_user(free_run: ProgramRun, name: str) -> None:
    user = PRIVILEGES[name].runs_as
    assert container(free_run, name).inputs["user"] == f"{user.uid}:{user.gid}"


def _chowns(run: ProgramRun, name: str) -> dict[str, str]:
    """Host path -> the uid:gid the container's data-dir command hands it to."""
    [made] = [c for c in run.of_type(COMMAND) if c.name.endswith(f"-{name}-data-dirs")]
    steps = [line.split() for line in str(made.inputs["create"]).splitlines()]
    return {step[3]: step[2] for step in steps if step[:2] == ["sudo", "chown"]}


def _bind_sources(run: ProgramRun, name: str) -> list[str]:
    mounts = container(run, name).inputs.get("mounts") or []
    return [m["source"] for m in mounts if m["type"] == "bind" and m["source"].startswith(DATA)]


WITH_DATA = ["postgres", "redis", "redis-sentinel", "open-webui", "pipelines", "vault"]


def test_these_containers_keep_state_on_the_data_volume(free_run: ProgramRun) -> None:
    assert [n for n in IDS if _bind_sources(free_run, n)] == WITH_DATA


@pytest.mark.parametrize("name", WITH_DATA)
def test_each_data_directory_is_handed_to_the_user_its_container_runs_as(
    free_run: ProgramRun, name: str
) -> None:
    """From the registrations alone: the owner the data-dir command chowns every bind-mounted
    directory to is the container's `user`."""
    chowns = _chowns(free_run, name)
    user = container(free_run, name).inputs["user"]
    sources = _bind_sources(free_run, name)
    assert sources and {source: chowns.get(source) for source in sources} == dict.fromkeys(
        sources, user
    )


# --- the data directory, used by the container's process ----------------------------------------


def _known_capabilities() -> list[str]:
    """The capability names util-linux knows (Docker spells them upper case, without CAP_)."""
    done = subprocess.run(
        ["setpriv", "--list-caps"], capture_output=True, text=True, check=True, timeout=30
    )
    return [line.strip().upper() for line in done.stdout.splitlines() if line.strip()]


# What a service does with its data directory across restarts: on the first start it makes a
# 0700 directory and a file in it (redis' appendonlydir, postgres' PGDATA contents); on a later
# start it reads and appends to them.
_FIRST_START = 'set -e; cd "$1"; mkdir -m 700 kept; echo state > kept/state'
_LATER_START = 'set -e; cd "$1"; cat kept/state >/dev/null; echo more >> kept/state; touch new'


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under /tmp (world-searchable), not pytest's private tmp path: the service user must reach
    # it.
    with tempfile.TemporaryDirectory(prefix="ai-swarm-data-") as root:
        Path(root).chmod(0o755)
        made = Path(root) / "data"
        made.mkdir()
        yield made
        _as_root(["rm", "-rf", str(made)])


def _as_root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_ROOT, *argv], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


def _limited_to(capabilities: list[str]) -> list[str]:
    """setpriv that runs its command as root holding only `capabilities`."""
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in capabilities)])
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]


def _as_container(user: str, capabilities: list[str]) -> list[str]:
    """setpriv that runs its command as the container's `user` (uid:gid), no other group,
    holding only `capabilities`."""
    uid, gid = user.split(":")
    ids = [f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    return [*_limited_to(capabilities)[:-1], *ids, "--"]


@pytest.mark.parametrize("name", WITH_DATA)
def test_the_containers_process_keeps_its_state_in_the_directory_handed_to_it(
    free_run: ProgramRun, name: str, data_dir: Path
) -> None:
    """The data-dir command's chown, run for real, then the container's process (its user, its
    capabilities) starting twice; a process of another uid cannot do the same."""
    owner = next(iter(_chowns(free_run, name).values()))
    assert _as_root(["chown", owner, str(data_dir)]).returncode == 0
    inputs = container(free_run, name).inputs
    process = _as_container(inputs["user"], inputs["capabilities"]["adds"])
    for start in (_FIRST_START, _LATER_START):
        done = _as_root([*process, "sh", "-c", start, "start", str(data_dir)])
        assert done.returncode == 0, done.stderr
    if inputs["user"] != "0:0":
        other = _as_container("4242:4242", [])
        assert _as_root([*other, "sh", "-c", _LATER_START, "x", str(data_dir)]).returncode != 0


# A directory with a 0700 directory of another user's, a file still root's.
_PREPARE = """set -e
cd "$1"
mkdir kept && echo state > kept/state && echo new > fresh
chown -R "$2:$3" kept && chmod 700 kept
"""


@pytest.mark.parametrize("name", [n for n in IDS if PRIVILEGES[n].runs_as == ROOT])
def test_root_without_capabilities_still_owns_its_files(name: str, data_dir: Path) -> None:
    """The images that run as root write only what root owns: their image files and a
    root-owned data directory. Root with only its table entry still can; it cannot write where
    another user owns the directory."""
    capabilities = PRIVILEGES[name].capability_names
    prepared = _as_root(["sh", "-c", _PREPARE, "prepare", str(data_dir), "4242", "4242"])
    assert prepared.returncode == 0, prepared.stderr
    own = _as_root(["chown", "0:0", f"{data_dir}/fresh"])
    assert own.returncode == 0
    write_own = f'set -e; cd "{data_dir}"; cat fresh >/dev/null; echo more >> fresh; touch made'
    assert _as_root([*_limited_to(capabilities), "sh", "-c", write_own]).returncode == 0
    write_foreign = f'touch "{data_dir}/kept/x"'
    assert _as_root([*_limited_to(capabilities), "sh", "-c", write_foreign]).returncode != 0
    _as_root(["rm", "-f", f"{data_dir}/made"])
