"""`dryrun.policy`: the pack config as the CLI reads it, and the report of an evaluation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dryrun import POLICY_PACK_DIR
from dryrun.policy import (
    PolicyConfigError,
    PolicyDiagnostic,
    evaluate,
    load_policy_config,
    new_analyzer,
    reconcile_config,
)
from dryrun.synthetic import container, instance, volume

PROFILE_4X24 = POLICY_PACK_DIR / "profiles" / "a1-4x24.json"


def _write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(content)
    return path


def test_the_shipped_4x24_profile_raises_the_a1_allowance_to_4_ocpu_24_gb_4_instances() -> None:
    config = reconcile_config(new_analyzer(), load_policy_config(PROFILE_4X24))
    level, properties = config["a1-allowance"]
    assert level == "mandatory"
    assert (properties["maxA1Ocpus"], properties["maxA1MemoryGb"]) == (4, 24)
    assert properties["maxA1Instances"] == 4
    assert config["block-storage-allowance"] == (
        "mandatory",
        {"maxBlockStorageGb": 200, "maxVpusPerGb": 10},
    )


def test_an_empty_file_is_no_config(tmp_path: Path) -> None:
    assert load_policy_config(_write(tmp_path, "  \n")) == {}


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"a1-allowance": 4}', "'a1-allowance' is 4"),
        ('{"a1-allowance": "strict"}', "enforcement level 'strict'"),
        ('{"a1-allowance": {"enforcementLevel": "hard"}}', "enforcement level 'hard'"),
    ],
)
def test_a_malformed_file_is_rejected_naming_the_problem(
    tmp_path: Path, content: str, complaint: str
) -> None:
    with pytest.raises(PolicyConfigError, match=complaint):
        load_policy_config(_write(tmp_path, content))


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"a1-alowance": "advisory"}, "'a1-alowance', which the pack does not have"),
        ({"a1-allowance": {"maxA1Ocpu": 4}}, "a1-allowance: unknown property maxA1Ocpu"),
        ({"a1-allowance": {"maxA1Ocpus": "4"}}, "a1-allowance: maxA1Ocpus: '4' is not of type"),
        ({"vcn-allowance": {"maxVcns": -1}}, "vcn-allowance: maxVcns: -1 is less than"),
        ({"no-public-ingress": {"publicPorts": [0]}}, "publicPorts.0: 0 is less than"),
    ],
)
def test_config_that_does_not_fit_the_schemas_is_rejected(
    document: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(PolicyConfigError, match=complaint):
        reconcile_config(new_analyzer(), document)


def test_the_report_files_resource_violations_under_the_resource() -> None:
    image = container("redis", None, None, None, image="redis")
    report = evaluate([image])
    assert {(d.policy, d.enforcement_level, d.urn) for d in report.diagnostics} == {
        ("container-limits-required", "mandatory", image.urn),
        ("pinned-images", "advisory", image.urn),
        ("digest-pinned-images", "advisory", image.urn),
    }
    assert [d.policy for d in report.mandatory_violations] == ["container-limits-required"]
    assert [d.policy for d in report.advisories] == ["pinned-images", "digest-pinned-images"]


def test_stack_violations_come_once_and_config_applies() -> None:
    stack = [instance("app", 4, 24), volume("data", "150")]
    (found,) = evaluate(stack).mandatory_violations
    assert (found.policy, found.urn) == ("a1-allowance", "")
    assert not found.undecided
    assert evaluate(stack, load_policy_config(PROFILE_4X24)).diagnostics == ()


def test_component_resources_are_not_analyzed_as_resources() -> None:
    # A component of a type the resource policies judge would be flagged if it were sent.
    component = dataclasses.replace(container("db", cpus=None), custom=False)
    assert evaluate([component]).of_policy("container-limits-required") == ()
    assert evaluate([container("db", cpus=None)]).of_policy("container-limits-required") != ()


def test_config_can_make_the_advisory_policy_mandatory() -> None:
    report = evaluate([container("db", image="postgres")], {"pinned-images": "mandatory"})
    assert [d.enforcement_level for d in report.of_policy("pinned-images")] == ["mandatory"]


def test_the_analyzers_preview_fallback_is_recognised() -> None:
    fallback = PolicyDiagnostic(
        policy="a1-allowance",
        enforcement_level="advisory",
        message="can't run policy 'a1-allowance' from policy pack 'ai-swarm@v0.1.0' during "
        "preview: number value at .shapeConfig.ocpus can't be known during preview",
        urn="",
    )
    assert fallback.undecided
    assert not dataclasses.replace(fallback, message="A1 instances use 4 OCPU").undecided
