"""The pack reads the names the provider SDKs really send: resources made with pulumi_docker and
pulumi_oci by a small program under the mocks, not hand-written dicts, go through the pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_swarm_policies.contract import VOLUME_BACKUP_POLICY_ASSIGNMENT
from dryrun.engine import UNKNOWN, ProgramRun, run_program
from dryrun.policy import PolicyReport, evaluate

PROGRAM = """
import pulumi
import pulumi_docker as docker
import pulumi_oci as oci

tcp_443 = oci.core.NetworkSecurityGroupSecurityRuleTcpOptionsArgs(
    destination_port_range=oci.core.NetworkSecurityGroupSecurityRuleTcpOptionsDestinationPortRangeArgs(
        min=443, max=443
    )
)
for name, source in (("open", "0.0.0.0/0"), ("admin", "198.51.100.7/32")):
    oci.core.NetworkSecurityGroupSecurityRule(
        f"{name}-https", network_security_group_id="nsg", direction="INGRESS", protocol="6",
        source=source, source_type="CIDR_BLOCK", tcp_options=tcp_443,
    )
oci.core.Instance(
    "host",
    availability_domain="AD-1",
    compartment_id="compartment",
    shape="VM.Standard.A1.Flex",
    shape_config=oci.core.InstanceShapeConfigArgs(ocpus=2, memory_in_gbs=12),
    source_details=oci.core.InstanceSourceDetailsArgs(
        source_type="image", source_id="image", boot_volume_size_in_gbs="150"
    ),
    freeform_tags={"ai-swarm-host": "host"},
    opts=pulumi.ResourceOptions(ignore_changes=["source_details"]),
)
data = oci.core.Volume(
    "data", compartment_id="compartment", availability_domain="AD-1", size_in_gbs="100"
)
weekly = oci.core.VolumeBackupPolicy(
    "weekly",
    compartment_id="compartment",
    schedules=[
        oci.core.VolumeBackupPolicyScheduleArgs(
            backup_type="INCREMENTAL", period="ONE_WEEK", retention_seconds=6 * 7 * 24 * 3600,
            day_of_week="SUNDAY", hour_of_day=3, time_zone="UTC",
        )
    ],
)
oci.core.VolumeBackupPolicyAssignment("weekly-data", asset_id=data.id, policy_id=weekly.id)
image = docker.RemoteImage("redis", name="redis:latest", platform="linux/amd64")
hardened = dict(
    capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["CHOWN"]),
    security_opts=["no-new-privileges:true"],
    mounts=[docker.ContainerMountArgs(type="bind", source="/mnt/data/cache", target="/data")],
)
exposed = dict(
    mounts=[
        docker.ContainerMountArgs(
            type="bind", source="/var/run/docker.sock", target="/s", read_only=True
        )
    ],
)
for name, memory, ip, extra in (
    ("cache", 8192, "127.0.0.1", hardened),
    ("cache-public", 4096, None, exposed),
):
    docker.Container(
        name,
        image=image.image_id,
        cpus="0.5",
        memory=memory,
        labels=[docker.ContainerLabelArgs(label="ai-swarm.host", value="host")],
        ports=[docker.ContainerPortArgs(internal=6379, external=6379, ip=ip)],
        **extra,
    )
"""


@pytest.fixture(scope="module")
def sdk_run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    project = tmp_path_factory.mktemp("sdk-program")
    (project / "__main__.py").write_text(PROGRAM)
    (project / "Pulumi.oracle.yaml").write_text("config: {}\n")
    return run_program(stack="oracle", project_dir=Path(project))


@pytest.fixture(scope="module")
def report(sdk_run: ProgramRun) -> PolicyReport:
    return evaluate(sdk_run.registrations)


def _urn(run: ProgramRun, name: str) -> str:
    return next(r.urn for r in run.registrations if r.name == name)


def test_the_python_sdk_sends_ignore_changes_in_the_engines_spelling(sdk_run: ProgramRun) -> None:
    assert sdk_run.one("oci:Core/instance:Instance").ignore_changes == ("sourceDetails",)


def test_every_expected_violation_fires_on_sdk_made_resources(
    sdk_run: ProgramRun, report: PolicyReport
) -> None:
    fired = {(d.policy, d.urn) for d in report.mandatory_violations}
    assert fired == {
        ("no-public-ingress", _urn(sdk_run, "open-https")),
        ("no-public-ingress", _urn(sdk_run, "cache-public")),
        # the Docker socket, Docker's default capabilities, no no-new-privileges
        ("container-hardening", _urn(sdk_run, "cache-public")),
        ("protected-data", _urn(sdk_run, "data")),
        ("arm64-images", _urn(sdk_run, "redis")),
        # boot 150 GB + volume 100 GB; memory 8,192 + 4,096 MB on a 12 GB host
        ("block-storage-allowance", ""),
        # a weekly schedule kept six weeks: six backups of the data volume
        ("backup-allowance", ""),
        ("host-memory-budget", _urn(sdk_run, "host")),
    }


def test_pinned_images_reads_the_sdk_name(sdk_run: ProgramRun, report: PolicyReport) -> None:
    assert [(d.policy, d.urn) for d in report.advisories] == [
        ("pinned-images", _urn(sdk_run, "redis")),
        ("digest-pinned-images", _urn(sdk_run, "redis")),
    ]


def test_in_preview_the_backup_policy_is_joined_through_its_dependency(
    sdk_run: ProgramRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = tmp_path_factory.mktemp("sdk-program-preview")
    (project / "__main__.py").write_text(PROGRAM)
    (project / "Pulumi.oracle.yaml").write_text("config: {}\n")
    preview = run_program(stack="oracle", project_dir=Path(project), preview=True)
    assignment = preview.one(VOLUME_BACKUP_POLICY_ASSIGNMENT)
    assert assignment.inputs["policyId"] is UNKNOWN  # the join cannot use the id itself
    found = evaluate(preview.registrations).of_policy("backup-allowance")
    assert [(d.enforcement_level, d.urn) for d in found] == [("mandatory", "")]
    assert "keep 6 backups" in found[0].message


def test_container_hardening_reads_the_sdk_names(report: PolicyReport) -> None:
    [found] = report.of_policy("container-hardening")
    assert "mounts the Docker socket /var/run/docker.sock" in found.message
    assert "keeps Docker's default capabilities" in found.message
    assert "set no-new-privileges" in found.message
