"""Every container drops ALL capabilities, gains no privileges, and adds back only its table entry.

The entrypoint facts behind the table (components/services/privileges.py) are run here with the
real tools: as root, limited to the table's capabilities, the chown-then-drop entrypoints'
commands succeed, and without any one of those capabilities they fail.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.services.catalog import CATALOG
from components.services.privileges import NO_NEW_PRIVILEGES, PRIVILEGES, ROOT, Privileges
from dryrun.engine import ProgramRun
from tests.services.readers import container

IDS = [name for entry in CATALOG.values() for name in entry.containers]
# The entrypoints that start as root, chown the data directory and drop to the service user.
CHOWN_THEN_DROP = ["postgres", "redis", "redis-sentinel"]
# Changing capability sets and owners needs root: others get it through passwordless sudo.
AS_ROOT: tuple[str, ...] = () if os.geteuid() == 0 else ("sudo", "-n")
COMMAND_TIMEOUT_S = 30


def test_the_table_covers_exactly_the_catalogs_containers() -> None:
    assert set(PRIVILEGES) == set(IDS)


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


def test_the_chown_then_drop_images_run_their_service_as_a_user_not_root() -> None:
    for name in CHOWN_THEN_DROP:
        assert PRIVILEGES[name].runs_as.uid != ROOT.uid
        assert PRIVILEGES[name].capability_names == ["CHOWN", "DAC_READ_SEARCH", "SETUID", "SETGID"]


# --- the entrypoint facts, run ------------------------------------------------------------------


def _known_capabilities() -> list[str]:
    """The capability names util-linux knows (Docker spells them upper case, without CAP_)."""
    done = subprocess.run(
        ["setpriv", "--list-caps"], capture_output=True, text=True, check=True, timeout=30
    )
    return [line.strip().upper() for line in done.stdout.splitlines() if line.strip()]


# What docker-entrypoint.sh of redis and postgres does as root before the service starts: hand
# the data directory to the service user (`find ... -exec chown`), drop to that user, and the
# service then reads its 0600 secret file. `set -e` as in both entrypoints.
_ENTRYPOINT = """set -e
cd "$1"
find . \\! -user "$2" -exec chown "$2" '{}' +
exec setpriv --reuid="$2" --regid="$3" --clear-groups -- cat secret.conf
"""

# A data directory as the service left it on an earlier start, plus what a new container
# brings: a 0700 directory of the service user's (redis' appendonlydir, postgres' PGDATA), a
# file that is still root's, and the secret upload (the service user's, 0600).
_PREPARE = """set -e
cd "$1"
mkdir kept && echo state > kept/state && echo new > fresh && echo secret > secret.conf
chown -R "$2:$3" kept secret.conf && chmod 700 kept && chmod 600 secret.conf
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under /tmp (world-searchable), not pytest's private tmp path: the service user must reach
    # it after the drop.
    with tempfile.TemporaryDirectory(prefix="ai-swarm-entrypoint-") as root:
        Path(root).chmod(0o755)
        yield Path(root)
        # The service user's files inside are removed by root.
        _as_root(["rm", "-rf", f"{root}/kept", f"{root}/fresh", f"{root}/secret.conf"])


def _as_root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_ROOT, *argv], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


def _limited_to(capabilities: list[str]) -> list[str]:
    """setpriv that runs its command as root holding only `capabilities`."""
    bounding = ",".join(["-all", *(f"+{c.lower()}" for c in capabilities)])
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--"]


def _entrypoint(data: Path, entry: Privileges, capabilities: list[str]) -> int:
    user = [str(entry.runs_as.uid), str(entry.runs_as.gid)]
    prepared = _as_root(["sh", "-c", _PREPARE, "prepare", str(data), *user])
    assert prepared.returncode == 0, prepared.stderr
    ran = _as_root([*_limited_to(capabilities), "sh", "-c", _ENTRYPOINT, "entry", str(data), *user])
    return ran.returncode


@pytest.mark.parametrize("name", CHOWN_THEN_DROP)
def test_the_tables_capabilities_are_enough_for_the_entrypoint(name: str, data_dir: Path) -> None:
    entry = PRIVILEGES[name]
    assert _entrypoint(data_dir, entry, entry.capability_names) == 0
    assert (data_dir / "fresh").stat().st_uid == entry.runs_as.uid


@pytest.mark.parametrize(
    ("name", "missing"),
    [(name, c.name) for name in CHOWN_THEN_DROP for c in PRIVILEGES[name].capabilities],
)
def test_without_any_one_of_them_the_entrypoint_fails(
    name: str, missing: str, data_dir: Path
) -> None:
    entry = PRIVILEGES[name]
    fewer = [c for c in entry.capability_names if c != missing]
    assert _entrypoint(data_dir, entry, fewer) != 0


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
