"""The instance's rendered user data against Debian's cloud-init schema validator."""

from __future__ import annotations

from pathlib import Path

from dryrun.engine import ProgramRun
from tests.helpers import user_data_text
from tests.integration import daemons


def test_user_data_passes_the_cloud_init_schema(program_run: ProgramRun, tmp_path: Path) -> None:
    user_data = user_data_text(program_run)
    assert user_data.startswith("#cloud-config\n")
    checked = daemons.cloud_init_schema(user_data, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config" in checked.stdout
    # 22.4 lists deprecated keys without failing: a listed one is a finding all the same.
    assert "deprecat" not in checked.stdout.lower() + checked.stderr.lower()


def test_the_validator_rejects_a_broken_document(program_run: ProgramRun, tmp_path: Path) -> None:
    # The same call on the rendered text with a type error fails: the check above can fail.
    broken = user_data_text(program_run) + "\nruncmd: 7\n"
    checked = daemons.cloud_init_schema(broken, tmp_path)
    assert checked.returncode != 0
    assert "runcmd" in checked.stdout + checked.stderr
