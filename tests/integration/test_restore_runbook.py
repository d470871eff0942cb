"""docs/operations.md's "Restoring a volume backup" works as written.

Its order is checked (nothing needs Docker between stopping it and the reboot; the volume is
unmounted before it is detached, and backed up before it is deleted), its Pulumi and OCI lines
against the names, types and inputs the program registers, and its host commands are run as
written, with `sudo`, `ssh`, `systemctl` and `docker` stood in for, against a real ext4 on a loop
device mounted at /mnt/data in a private mount namespace.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from dryrun.engine import ProgramRun, run_program
from tests.helpers import command_script
from tests.integration import daemons

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ATTACHMENT_TYPE = "oci:Core/volumeAttachment:VolumeAttachment"
VOLUME_TYPE = "oci:Core/volume:Volume"
# The URN placeholders the runbook uses, and the resource each stands for.
PLACEHOLDER_URNS = {
    "data volume URN": "host-data",
    "volume attachment URN": "host-data-attachment",
    "backup assignment URN": "backups-data-assignment",
    "ArmHost URN": "host",
}
DUMP = "litellm-20260101T030000Z.dump"


def _steps() -> list[str]:
    text = OPERATIONS.read_text()
    start = text.index("### Restoring a volume backup")
    section = text[start : text.index("\n### ", start + 1)]
    return re.split(r"\n(?=\d+\. )", section)[1:]


def _commands(step: str) -> list[str]:
    return [c for c in re.findall(r"`([^`]+)`", step) if " " in c]


def _step_with(text: str) -> int:
    found = [i for i, step in enumerate(_steps()) if text in step]
    assert found, f"no step of the runbook has {text!r}"
    return found[0]


def test_nothing_needs_docker_between_stopping_it_and_the_reboot() -> None:
    stop, reboot = _step_with("systemctl stop"), _step_with("sudo reboot")
    assert "docker.service" in _steps()[stop] and stop < reboot
    between = [c for step in _steps()[stop:reboot] for c in _commands(step)]
    for command in between:
        assert not command.startswith(("pulumi up", "pulumi preview", "docker ")), command
        if command.startswith("pulumi refresh"):
            assert "--target" in command, command  # reads only OCI resources named
    assert _step_with("`pulumi up`") > reboot


def test_the_volume_is_unmounted_before_it_is_detached_and_backed_up_before_it_goes() -> None:
    unmount = _step_with("umount /mnt/data")
    assert "ai-swarm-pg-dump.timer" in _steps()[unmount]  # no dump starts on the bare mountpoint
    assert unmount < _step_with("volume-attachment detach")
    assert _step_with("backup create --volume-id <old volume>") < _step_with("bv volume delete")
    assert _step_with("attach-paravirtualized-volume") < _step_with("sudo reboot")


def test_the_timer_it_stops_is_the_one_the_program_installs(program_run: ProgramRun) -> None:
    [stop] = [c for c in _commands(_steps()[_step_with("umount")]) if "systemctl stop" in c]
    timer = next(w for w in shlex.split(stop) if w.endswith(".timer"))
    assert f"systemctl enable --now {timer}" in command_script(program_run, "backups-pg-dump")


def test_pulumi_lines_name_what_the_program_registers(program_run: ProgramRun) -> None:
    by_name = {r.name: r for r in program_run.registrations}
    steps = "\n".join(_steps())
    placeholders = set(re.findall(r"<([^<>]* URN)>", steps))
    assert placeholders == set(PLACEHOLDER_URNS)
    for name in PLACEHOLDER_URNS.values():
        assert name in by_name
    imports = [c for c in re.findall(r"`(pulumi import [^`]+)`", steps)]
    assert len(imports) == 2
    host = by_name["host"]
    for line in imports:
        words = shlex.split(line)
        type_, name = words[2], words[3]
        registration = by_name[name]
        assert registration.type == type_
        assert registration.parent == host.urn
        parent = words[words.index("--parent") + 1]
        assert parent == f"{host.name}=<ArmHost URN>"
    assert {shlex.split(line)[2] for line in imports} == {VOLUME_TYPE, ATTACHMENT_TYPE}


def _option(command: str, name: str) -> str:
    """The value an option is given: a word, or a whole <placeholder>."""
    found = re.search(rf"{name} ((?:<[^>]*>)?\S*)", command)
    assert found is not None, f"{name} not in {command}"
    return found[1]


def test_the_attach_line_matches_the_program_attachment(program_run: ProgramRun) -> None:
    [attach] = [c for c in re.findall(r"`([^`]+)`", "\n".join(_steps())) if "attach-para" in c]
    attachment = program_run.one(ATTACHMENT_TYPE).inputs
    assert attachment["attachmentType"] == "paravirtualized"
    assert _option(attach, "--device") == attachment["device"]
    assert _option(attach, "--display-name") == attachment["displayName"]


def test_the_restored_volume_is_made_as_the_program_makes_it() -> None:
    [create] = [c for c in re.findall(r"`([^`]+)`", "\n".join(_steps())) if "volume create" in c]
    assert _option(create, "--display-name") == "<hostName>-data"
    assert _option(create, "--size-in-gbs") == "<dataVolumeGb>"
    run = run_program(overrides={"hostName": "restored", "dataVolumeGb": "170"})
    volume = run.one(VOLUME_TYPE).inputs
    assert (volume["displayName"], volume["sizeInGbs"]) == ("restored-data", "170")


# --- the host commands, run as written -----------------------------------------------------

_STAND_INS = {
    "sudo": 'exec "$@"\n',
    # The remote command is the rest of the line, run by the remote user's shell.
    "ssh": 'shift\nexec sh -c "$*"\n',
    "systemctl": 'echo "$*" >> "$RUNBOOK_LOG"\n',
    "docker": 'echo "docker $*" >> "$RUNBOOK_LOG"\n',
}


def _host_line(step_text: str) -> str:
    [line] = [c for c in _commands(_steps()[_step_with(step_text)]) if step_text in c]
    return line


def _stand_ins(bin_dir: Path) -> None:
    bin_dir.mkdir()
    for name, body in _STAND_INS.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)


def _filesystem(path: Path) -> Path:
    daemons.require_program("mkfs.ext4")
    subprocess.run(["truncate", "-s", "32M", str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "ai-swarm-data", str(path)], check=True)
    return path


def _in_namespace(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`script` in a private mount namespace, with a tmpfs over /mnt (the machine's own /mnt is
    never touched) and the stand-ins first on PATH."""
    daemons.require_program("unshare")
    prologue = (
        "set -u\nmount -t tmpfs ai-swarm-runbook /mnt\nmkdir /mnt/data\n"
        f"export PATH={tmp_path / 'bin'}:$PATH RUNBOOK_LOG={tmp_path / 'log'}\n"
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", prologue + script],
        capture_output=True,
        text=True,
        timeout=daemons.COMMAND_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    _stand_ins(tmp_path / "bin")
    return _filesystem(tmp_path / "volume.img")


_MOUNTED = "if mountpoint -q /mnt/data; then echo still mounted; else echo unmounted; fi\n"
_SEED = (
    "mount -o loop {image} /mnt/data\n"
    "mkdir -p /mnt/data/backups/postgres\n"
    f"echo dump > /mnt/data/backups/postgres/{DUMP}\n"
)


def test_the_copy_off_line_copies_the_dumps(volume: Path, tmp_path: Path) -> None:
    line = _host_line("tar -C /mnt/data/backups").replace("<ip>", "192.0.2.10")
    done = _in_namespace(_SEED.format(image=volume) + line + "\n", tmp_path)
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(
        ["tar", "-tf", str(tmp_path / "postgres-dumps.tar")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"postgres/{DUMP}" in listing.stdout.split()


def test_the_unmount_line_stops_the_timer_and_docker_then_unmounts(
    volume: Path, tmp_path: Path
) -> None:
    line = _host_line("umount /mnt/data")
    script = _SEED.format(image=volume) + line + f"\necho rc=$?\n{_MOUNTED}"
    done = _in_namespace(script, tmp_path)
    assert "rc=0" in done.stdout and "unmounted" in done.stdout, done.stdout + done.stderr
    stopped = (tmp_path / "log").read_text().split()
    assert stopped[:1] == ["stop"] and "ai-swarm-pg-dump.timer" in stopped
    assert {"docker.service", "docker.socket"} <= set(stopped)


def test_the_unmount_line_stops_while_the_volume_is_busy(volume: Path, tmp_path: Path) -> None:
    """A process still on the volume: `umount` fails, the line exits non-zero and the volume
    stays mounted, so the operator does not go on to detach a mounted volume."""
    line = _host_line("umount /mnt/data")
    script = (
        _SEED.format(image=volume)
        + "(cd /mnt/data && exec sleep 20) & busy=$!\nsleep 0.5\n"
        + f"( {line} ); echo rc=$?\n{_MOUNTED}kill $busy\n"
    )
    done = _in_namespace(script, tmp_path)
    assert "still mounted" in done.stdout and "rc=0" not in done.stdout, done.stdout + done.stderr


def test_the_check_after_the_reboot_sees_the_restored_data(volume: Path, tmp_path: Path) -> None:
    check = _host_line("findmnt /mnt/data")
    # The restored volume: a copy of the backed-up one, mounted as the host mounts it at boot.
    seed = _in_namespace(_SEED.format(image=volume), tmp_path)
    assert seed.returncode == 0, seed.stderr
    restored = tmp_path / "restored.img"
    subprocess.run(["cp", str(volume), str(restored)], check=True)
    unmounted = _in_namespace(check + "\necho rc=$?\n", tmp_path)
    assert "rc=0" not in unmounted.stdout  # nothing mounted: the check fails
    mounted = _in_namespace(f"mount -o loop {restored} /mnt/data\n{check}\necho rc=$?\n", tmp_path)
    assert "rc=0" in mounted.stdout and DUMP in mounted.stdout, mounted.stdout + mounted.stderr
