"""What spends the Always Free allowance outside instance sizes and volume sizes: stand-alone
boot volumes, launch volumes, performance above Balanced, replicas, backups the assignments do
not show, and oci:Core types the allowance policies cannot measure. Each fixture here must fail
the pack with a mandatory violation."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.proto import analyzer_pb2

from ai_swarm_policies.contract import BOOT_VOLUME, VOLUME, VOLUME_BACKUP_POLICY
from dryrun.engine import Registration
from dryrun.synthetic import backup_schedule, instance, resource, volume
from tests.policies.policy_requests import analyze, analyze_stack, analyzer, of_policy

WEEK = 7 * 24 * 3600
BRONZE = "ocid1.volumebackuppolicy.oc1..bronze"


def _boot_volume(name: str, size_gb: str | None = "50", **extra: Any) -> Registration:
    inputs = {"sourceDetails": {"type": "bootVolume", "id": "ocid1.bootvolume.oc1..b"}, **extra}
    if size_gb is not None:
        inputs["sizeInGbs"] = size_gb
    return resource(BOOT_VOLUME, name, inputs, protect=True)


def _volume(name: str, **extra: Any) -> Registration:
    return resource(VOLUME, name, {"sizeInGbs": "50", **extra}, protect=True)


def _launching(name: str, **volume: Any) -> Registration:
    """An A1 instance that creates a block volume at launch."""
    made = instance(name)
    inputs = {
        **made.inputs,
        "launchVolumeAttachments": [
            {
                "type": "paravirtualized",
                "launchCreateVolumeDetails": {"volumeCreationType": "ATTRIBUTES", **volume},
            }
        ],
    }
    return resource(made.type, name, inputs, ignore_changes=made.ignore_changes)


def _with_boot_vpus(name: str, vpus: int) -> Registration:
    made = instance(name)
    source = {**made.inputs["sourceDetails"], "bootVolumeVpusPerGb": str(vpus)}
    return resource(
        made.type,
        name,
        {**made.inputs, "sourceDetails": source},
        ignore_changes=made.ignore_changes,
    )


def _mandatory(stack: list[Registration], policy: str) -> list[str]:
    diagnostics = [
        *analyze_stack(analyzer(), stack),
        *(d for r in stack for d in analyze(analyzer(), r)),
    ]
    found = of_policy(diagnostics, policy)
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in found)
    return [d.message for d in found]


def test_a_500_gb_boot_volume_counts_against_block_storage() -> None:
    [message] = _mandatory(
        [instance("app"), _boot_volume("spare", "500")], "block-storage-allowance"
    )
    assert "total 550 GB" in message and "'spare' 500 GB" in message


def test_a_boot_volume_without_a_size_is_not_guessed() -> None:
    [message] = _mandatory([_boot_volume("spare", None)], "block-storage-allowance")
    assert "BootVolume 'spare': sets no size (sizeInGbs)" in message


def test_a_volume_created_at_launch_counts_against_block_storage() -> None:
    stack = [_launching("app", sizeInGbs="200")]
    [message] = _mandatory(stack, "block-storage-allowance")
    assert "total 250 GB" in message and "launch volume 0 of 'app' 200 GB" in message


def test_balanced_performance_passes() -> None:
    stack = [instance("app"), _volume("data", vpusPerGb="10"), _boot_volume("b", vpusPerGb="0")]
    assert _mandatory(stack, "block-storage-allowance") == []


@pytest.mark.parametrize(
    ("stack", "named"),
    [
        ([_volume("data", vpusPerGb="20")], "Volume 'data': vpusPerGb is 20, above the 10"),
        ([_boot_volume("b", vpusPerGb="120")], "BootVolume 'b': vpusPerGb is 120"),
        (
            [
                _volume(
                    "data",
                    autotunePolicies=[{"autotuneType": "PERFORMANCE_BASED", "maxVpusPerGb": "30"}],
                )
            ],
            "autotunePolicies[0].maxVpusPerGb is 30",
        ),
        ([_with_boot_vpus("app", 30)], "sourceDetails.bootVolumeVpusPerGb is 30"),
        (
            [_launching("app", sizeInGbs="50", vpusPerGb="20")],
            "launchVolumeAttachments[0].launchCreateVolumeDetails.vpusPerGb is 20",
        ),
        (
            [_volume("data", blockVolumeReplicas=[{"availabilityDomain": "AD-2"}])],
            "Volume 'data': keeps 1 replica (blockVolumeReplicas)",
        ),
        (
            [_boot_volume("b", bootVolumeReplicas=[{"availabilityDomain": "eu-paris-1:AD-1"}])],
            "BootVolume 'b': keeps 1 replica (bootVolumeReplicas)",
        ),
    ],
)
def test_performance_and_replicas_beyond_the_free_storage_fail(
    stack: list[Registration], named: str
) -> None:
    [message] = _mandatory(stack, "block-storage-allowance")
    assert named in message and "maxVpusPerGb" in message


def test_the_performance_limit_is_configurable() -> None:
    config = {"block-storage-allowance": {"maxVpusPerGb": 20}}
    diagnostics = analyze_stack(analyzer(config), [_volume("data", vpusPerGb="20")])
    assert diagnostics == []


@pytest.mark.parametrize("policy", ["bronze", "silver", "gold"])
def test_a_volume_backed_up_by_its_own_backup_policy_id_fails(policy: str) -> None:
    ocid = f"ocid1.volumebackuppolicy.oc1..{policy}"
    for made in (_volume("data", backupPolicyId=ocid), _boot_volume("b", backupPolicyId=ocid)):
        [message] = _mandatory([made], "backup-allowance")
        assert f"'{made.name}' takes backups by its backupPolicyId {ocid}" in message


def test_an_oracle_defined_policy_assigned_by_id_fails() -> None:
    data = volume("data")
    bronze = resource(
        "oci:Core/volumeBackupPolicyAssignment:VolumeBackupPolicyAssignment",
        "bronze",
        {"assetId": "data-id", "policyId": BRONZE},
        property_dependencies={"assetId": [data.urn]},
    )
    [message] = _mandatory([data, bronze], "backup-allowance")
    assert "does not come from exactly one VolumeBackupPolicy of this stack" in message


def test_a_backup_policy_copying_to_another_region_fails() -> None:
    inputs = {
        "compartmentId": "ocid1.compartment.oc1..swarm",
        "destinationRegion": "us-ashburn-1",
        "schedules": [backup_schedule("ONE_WEEK", WEEK)],
    }
    copying = resource(VOLUME_BACKUP_POLICY, "weekly", inputs)
    [message] = _mandatory([copying], "backup-allowance")
    assert "copies every backup to region us-ashburn-1 (destinationRegion)" in message


@pytest.mark.parametrize(
    ("type_", "inputs"),
    [
        ("oci:Core/instancePool:InstancePool", {"size": 10, "instanceConfigurationId": "ic"}),
        ("oci:Core/instanceConfiguration:InstanceConfiguration", {"compartmentId": "c"}),
        (
            "oci:Core/volumeGroup:VolumeGroup",
            {"volumeGroupReplicas": [{"availabilityDomain": "us-ashburn-1:AD-1"}]},
        ),
        ("oci:Core/bootVolumeBackup:BootVolumeBackup", {"bootVolumeId": "b"}),
        ("oci:Core/volumeBackup:VolumeBackup", {"volumeId": "v"}),
    ],
)
def test_an_oci_core_type_the_allowance_cannot_measure_fails_naming_it(
    type_: str, inputs: dict[str, Any]
) -> None:
    [message] = _mandatory([resource(type_, "it", inputs)], "always-free-resource-types")
    assert f"{type_} 'it' is a resource type the allowance policies cannot measure" in message


def test_the_types_the_pack_understands_pass() -> None:
    stack = [instance("app"), volume("data"), _boot_volume("b")]
    # other providers' types are not the allowance's to judge
    stack.append(resource("random:index/randomPassword:RandomPassword", "pw", {"length": 32}))
    assert of_policy(analyze_stack(analyzer(), stack), "always-free-resource-types") == []
    pool = resource("oci:Core/instancePool:InstancePool", "pool", {"size": 10})
    [found] = of_policy(analyze_stack(analyzer(), [*stack, pool]), "always-free-resource-types")
    assert found.urn == pool.urn
