"""Compatibility: with the replica off, every resource of the default stack is registered with
the very inputs and options it had before the program modelled a second host.

An instance whose user data changes is replaced, and most Docker and remote-command inputs
replace their resource too: the recorded digests (`fixtures/default_inputs.txt`, one line per
URN: the sha256 of its inputs as sent to the engine and of its options) make any such change
visible. With the replica on, the A1's resources keep these digests too, but for the ones the
replica's network path must change (the security list and the A1's firewall).

To record again after a deliberate change (then review which URNs' lines changed):
    python -c 'from tests.test_inputs import record; record()'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from google.protobuf import json_format

from dryrun.engine import ProgramRun, Registration, run_program

RECORDED = Path(__file__).parent / "fixtures" / "default_inputs.txt"


def digest(registration: Registration) -> str:
    """Everything the engine compares to decide on an update or a replacement."""
    sent = {
        "inputs": json_format.MessageToDict(registration.wire_inputs),
        "parent": registration.parent,
        "provider": registration.provider,
        "dependencies": sorted(registration.dependencies),
        "propertyDependencies": {
            name: sorted(urns) for name, urns in registration.property_dependencies.items()
        },
        "protect": registration.protect,
        "retainOnDelete": registration.retain_on_delete,
        "deleteBeforeReplace": registration.delete_before_replace,
        "ignoreChanges": sorted(registration.ignore_changes),
        "replaceOnChanges": sorted(registration.replace_on_changes),
    }
    return hashlib.sha256(json.dumps(sent, sort_keys=True).encode()).hexdigest()


def digests(run: ProgramRun) -> dict[str, str]:
    return {r.urn: digest(r) for r in run.registrations}


def record() -> None:
    found = digests(run_program(stack="oracle"))
    RECORDED.write_text("".join(f"{urn} {found[urn]}\n" for urn in sorted(found)))


def recorded() -> dict[str, str]:
    lines = RECORDED.read_text().splitlines()
    return dict(line.rsplit(" ", 1) for line in lines)


def _changed(found: dict[str, str], before: dict[str, str]) -> list[str]:
    return sorted(urn for urn in before if found.get(urn) != before[urn])


def test_the_default_stack_sends_the_recorded_inputs(always_free_run: ProgramRun) -> None:
    found = digests(always_free_run)
    assert set(found) == set(recorded())
    assert _changed(found, recorded()) == []
