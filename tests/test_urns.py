"""Compatibility: every URN the default stack registers stays what the recorded list says.

A URN is a resource's identity in a stack's state: one that changes makes `pulumi up` delete the
old resource and create a new one (for the protected data volume, refuse). The list in
`fixtures/default_urns.txt` was recorded from the program as it is deployed; a change to it is a
change to every deployed stack, to be made on purpose (with an alias where a name must change).
Both sizing profiles register the same resources, so one list serves both.

To record the list again after a deliberate change (then review the diff it makes):
    python -c 'from tests.test_urns import record; record()'
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from dryrun.engine import ProgramRun, run_program

RECORDED = Path(__file__).parent / "fixtures" / "default_urns.txt"


def urns(run: ProgramRun) -> list[str]:
    return sorted(r.urn for r in run.registrations)


def record() -> None:
    RECORDED.write_text("\n".join(urns(run_program(stack="oracle"))) + "\n")


@pytest.mark.parametrize("run_name", ["always_free_run", "a1_4x24_run"])
def test_the_stack_registers_the_recorded_urns(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    recorded = RECORDED.read_text().splitlines()
    found = urns(run)
    diff = "\n".join(
        difflib.unified_diff(recorded, found, str(RECORDED.name), "the program", lineterm="")
    )
    assert found == recorded, f"the stack's URNs differ from the recorded ones:\n{diff}"
