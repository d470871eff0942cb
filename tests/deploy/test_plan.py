"""The preview guard on recorded engine events, and the data volume's domain read from a
recorded `pulumi stack export`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deploy.plan import data_volume_domain, domain_index, review
from deploy.ports import OperatorError, PlannedStep, Preview
from tests.deploy.fakes import fixture_text, recorded_preview

FRANKFURT = ["Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2", "Uocm:EU-FRANKFURT-1-AD-3"]


def test_a_new_ssh_key_replaces_the_instance_and_its_attachment() -> None:
    checked = review(recorded_preview("replace_instance"))
    assert checked.dangerous == (
        "replace the instance host-instance (because of metadata)",
        "replace the data volume's attachment host-data-attachment (because of instanceId)",
    )
    assert checked.unreadable is None
    assert not checked.safe


def test_a_deleted_attachment_is_named() -> None:
    checked = review(recorded_preview("delete_attachment"))
    assert checked.dangerous == ("delete the data volume's attachment host-data-attachment",)
    assert not checked.safe


def test_updates_and_sames_are_safe() -> None:
    preview = recorded_preview("updates_only")
    # The fixture does touch the guarded resources, in place.
    assert {(s.type.rpartition(":")[2], s.op) for s in preview.steps} >= {
        ("Instance", "update"),
        ("Volume", "update"),
        ("VolumeAttachment", "same"),
    }
    checked = review(preview)
    assert checked.dangerous == ()
    assert checked.safe


def test_the_recorded_events_parse_into_steps_and_the_summary_counts() -> None:
    preview = recorded_preview("replace_instance")
    ops = [step.op for step in preview.steps if step.urn.endswith("::host-instance")]
    assert ops == ["delete-replaced", "replace", "create-replacement"]
    replace = next(s for s in preview.steps if s.op == "replace")
    assert replace.keys == ("metadata",)
    assert preview.counts == {"same": 3, "update": 1, "replace": 3}


REMOVING = ["replace", "create-replacement", "delete-replaced", "delete", "discard"]


@pytest.mark.parametrize("op", [*REMOVING, "import-replacement", "read-replacement"])
@pytest.mark.parametrize(
    ("type_", "what"),
    [
        ("oci:Core/instance:Instance", "the instance"),
        ("oci:Core/volume:Volume", "the data volume"),
        ("oci:Core/volumeAttachment:VolumeAttachment", "the data volume's attachment"),
    ],
)
def test_every_removing_operation_on_each_guarded_type_is_refused(
    op: str, type_: str, what: str
) -> None:
    urn = f"urn:pulumi:oracle::ai-swarm::ai-swarm:oci:ArmHost${type_}::host-x"
    preview = Preview(steps=(PlannedStep(op, urn, type_),), counts={op: 1})
    checked = review(preview)
    assert checked.dangerous[0].endswith(f"{what} host-x")
    assert not checked.safe


def test_removing_other_resources_is_not_the_guards_business() -> None:
    urn = "urn:pulumi:oracle::ai-swarm::docker:index/container:Container::postgres"
    preview = Preview(
        steps=(PlannedStep("replace", urn, "docker:index/container:Container"),),
        counts={"replace": 1},
    )
    assert review(preview).safe


def test_a_preview_without_steps_is_not_taken_as_safe() -> None:
    checked = review(Preview(steps=(), counts={"same": 40}))
    assert checked.unreadable == "the preview reported no resource step"
    assert not checked.safe


def test_a_counted_removal_that_no_event_names_is_not_taken_as_safe() -> None:
    stack = "urn:pulumi:oracle::ai-swarm::pulumi:pulumi:Stack::ai-swarm-oracle"
    preview = Preview(
        steps=(PlannedStep("same", stack, "pulumi:pulumi:Stack"),),
        counts={"same": 1, "delete": 1},
    )
    checked = review(preview)
    assert checked.unreadable == "the preview counts delete steps that its events do not name"
    assert not checked.safe


# ---------------------------------------------------------------------------------------------
# Where the data volume lives


def exported() -> dict[str, Any]:
    deployment: dict[str, Any] = json.loads(fixture_text("state/export.json"))["deployment"]
    return deployment


def test_the_volumes_domain_is_read_from_its_state() -> None:
    assert data_volume_domain(exported()) == "Uocm:EU-FRANKFURT-1-AD-2"


def test_a_state_without_a_volume_pins_nothing() -> None:
    deployment = exported()
    deployment["resources"] = [
        r for r in deployment["resources"] if r["type"] != "oci:Core/volume:Volume"
    ]
    assert data_volume_domain(deployment) is None
    assert data_volume_domain({}) is None


def test_a_volume_pending_deletion_does_not_count() -> None:
    deployment = exported()
    volume = next(r for r in deployment["resources"] if r["type"] == "oci:Core/volume:Volume")
    old = json.loads(json.dumps(volume))
    old["delete"] = True
    old["outputs"]["availabilityDomain"] = FRANKFURT[0]
    deployment["resources"].append(old)
    assert data_volume_domain(deployment) == FRANKFURT[1]


def test_volumes_in_two_domains_are_an_operator_error() -> None:
    deployment = exported()
    volume = next(r for r in deployment["resources"] if r["type"] == "oci:Core/volume:Volume")
    other = json.loads(json.dumps(volume))
    other["outputs"]["availabilityDomain"] = FRANKFURT[2]
    deployment["resources"].append(other)
    with pytest.raises(OperatorError, match="several availability domains"):
        data_volume_domain(deployment)


@pytest.mark.parametrize(
    ("name", "names", "index"),
    [
        (FRANKFURT[1], FRANKFURT, 2),
        (FRANKFURT[1], None, 2),
        ("Uocm:PHX-AD-3", None, 3),
        ("AD-3", ["AD-1", "AD-2", "AD-3"], 3),
        ("Uocm:PHX-AD-3", FRANKFURT, None),
        ("somewhere", None, None),
    ],
)
def test_domain_index(name: str, names: list[str] | None, index: int | None) -> None:
    assert domain_index(name, names) == index
