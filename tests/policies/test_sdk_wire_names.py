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
    capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
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


# What the pack once let through, made with the SDKs: each resource must fail it.
GAPS_PROGRAM = """
import pulumi
import pulumi_docker as docker
import pulumi_oci as oci

gold = "ocid1.volumebackuppolicy.oc1..gold"
oci.core.Instance(
    "host",
    availability_domain="AD-1",
    compartment_id="compartment",
    shape="VM.Standard.A1.Flex",
    shape_config=oci.core.InstanceShapeConfigArgs(ocpus=2, memory_in_gbs=12),
    source_details=oci.core.InstanceSourceDetailsArgs(
        source_type="image", source_id="image", boot_volume_size_in_gbs="50",
        boot_volume_vpus_per_gb="30",
    ),
    launch_volume_attachments=[
        oci.core.InstanceLaunchVolumeAttachmentArgs(
            type="paravirtualized",
            launch_create_volume_details=(
                oci.core.InstanceLaunchVolumeAttachmentLaunchCreateVolumeDetailsArgs(
                    size_in_gbs="100", volume_creation_type="ATTRIBUTES", vpus_per_gb="20"
                )
            ),
        )
    ],
    freeform_tags={"ai-swarm-host": "host"},
    opts=pulumi.ResourceOptions(ignore_changes=["source_details"]),
)
oci.core.BootVolume(
    "spare",
    availability_domain="AD-1",
    compartment_id="compartment",
    source_details=oci.core.BootVolumeSourceDetailsArgs(type="bootVolume", id="boot"),
    size_in_gbs="500",
    boot_volume_replicas=[oci.core.BootVolumeBootVolumeReplicaArgs(availability_domain="AD-2")],
    backup_policy_id=gold,
    opts=pulumi.ResourceOptions(protect=True),
)
oci.core.Volume(
    "fast",
    availability_domain="AD-1",
    compartment_id="compartment",
    size_in_gbs="50",
    vpus_per_gb="20",
    autotune_policies=[
        oci.core.VolumeAutotunePolicyArgs(autotune_type="PERFORMANCE_BASED", max_vpus_per_gb="30")
    ],
    block_volume_replicas=[oci.core.VolumeBlockVolumeReplicaArgs(availability_domain="AD-2")],
    backup_policy_id=gold,
    opts=pulumi.ResourceOptions(protect=True),
)
oci.core.VolumeBackupPolicy(
    "copied",
    compartment_id="compartment",
    destination_region="us-ashburn-1",
    schedules=[
        oci.core.VolumeBackupPolicyScheduleArgs(
            backup_type="INCREMENTAL", period="ONE_WEEK", retention_seconds=7 * 24 * 3600,
        )
    ],
)
oci.core.InstancePool(
    "pool",
    compartment_id="compartment",
    instance_configuration_id="configuration",
    size=10,
    placement_configurations=[
        oci.core.InstancePoolPlacementConfigurationArgs(availability_domain="AD-1")
    ],
)
oci.core.VolumeGroup(
    "group",
    availability_domain="AD-1",
    compartment_id="compartment",
    source_details=oci.core.VolumeGroupSourceDetailsArgs(type="volumeIds", volume_ids=["v"]),
    volume_group_replicas=[
        oci.core.VolumeGroupVolumeGroupReplicaArgs(availability_domain="us-ashburn-1:AD-1")
    ],
)
docker.Container(
    "escape",
    name="escape",
    image="sha256:escape",
    cpus="0.5",
    memory=256,
    labels=[docker.ContainerLabelArgs(label="ai-swarm.host", value="host")],
    user="0:0",
    capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["DAC_READ_SEARCH"]),
    security_opts=["no-new-privileges:true", "seccomp=unconfined", "apparmor=unconfined"],
    network_mode="host",
    pid_mode="host",
    ipc_mode="host",
    userns_mode="host",
    cgroupns_mode="host",
    devices=[docker.ContainerDeviceArgs(host_path="/dev/sda")],
    device_requests=[docker.ContainerDeviceRequestArgs(driver="nvidia", count=-1)],
    mounts=[docker.ContainerMountArgs(type="bind", source="/run/./docker.sock", target="/s")],
    volumes=[docker.ContainerVolumeArgs(host_path="/var/run//docker.sock", container_path="/t")],
)
docker.Volume("bound", driver="local", driver_opts={"type": "none", "o": "bind", "device": "/etc"})
docker.Service(
    "swarm",
    task_spec=docker.ServiceTaskSpecArgs(
        container_spec=docker.ServiceTaskSpecContainerSpecArgs(
            image="redis:latest", cap_adds=["ALL"]
        )
    ),
)
"""


def _program_run(tmp_path_factory: pytest.TempPathFactory, program: str) -> ProgramRun:
    project = tmp_path_factory.mktemp("sdk-program")
    (project / "__main__.py").write_text(program)
    (project / "Pulumi.oracle.yaml").write_text("config: {}\n")
    return run_program(stack="oracle", project_dir=Path(project))


@pytest.fixture(scope="module")
def gaps_run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    return _program_run(tmp_path_factory, GAPS_PROGRAM)


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
        ("image-platforms", _urn(sdk_run, "redis")),
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


def _messages(report: PolicyReport, run: ProgramRun, policy: str, name: str) -> str:
    return "\n".join(d.message for d in report.of_policy(policy) if d.urn == _urn(run, name))


def test_every_gap_fails_the_pack_on_sdk_made_resources(gaps_run: ProgramRun) -> None:
    report = evaluate(gaps_run.registrations)
    fired = {(d.policy, d.urn) for d in report.mandatory_violations}
    urn = {r.name: r.urn for r in gaps_run.registrations}
    assert fired == {
        # the boot volume's VPUs and launch volume's VPUs; the boot and fast volumes' VPUs and
        # replicas; 50 + 100 launched + 500 + 50 GB in total
        ("block-storage-allowance", urn["host"]),
        ("block-storage-allowance", urn["spare"]),
        ("block-storage-allowance", urn["fast"]),
        ("block-storage-allowance", ""),
        # gold by backupPolicyId; a cross-region copy
        ("backup-allowance", urn["spare"]),
        ("backup-allowance", urn["fast"]),
        ("backup-allowance", urn["copied"]),
        ("always-free-resource-types", urn["pool"]),
        ("always-free-resource-types", urn["group"]),
        ("container-hardening", urn["escape"]),
        ("container-hardening", urn["bound"]),
        ("container-hardening", urn["swarm"]),
    }


def test_the_pack_reads_the_sdk_names_of_each_gap(gaps_run: ProgramRun) -> None:
    report = evaluate(gaps_run.registrations)
    storage = "block-storage-allowance"
    assert "sourceDetails.bootVolumeVpusPerGb is 30" in _messages(report, gaps_run, storage, "host")
    assert "launchCreateVolumeDetails.vpusPerGb is 20" in _messages(
        report, gaps_run, storage, "host"
    )
    assert "keeps 1 replica (bootVolumeReplicas)" in _messages(report, gaps_run, storage, "spare")
    fast = _messages(report, gaps_run, storage, "fast")
    for part in ("vpusPerGb is 20", "maxVpusPerGb is 30", "keeps 1 replica (blockVolumeReplicas)"):
        assert part in fast
    [total] = [d.message for d in report.of_policy(storage) if d.urn == ""]
    assert "total 700 GB" in total and "launch volume 0 of 'host' 100 GB" in total
    assert "backupPolicyId ocid1.volumebackuppolicy.oc1..gold" in _messages(
        report, gaps_run, "backup-allowance", "fast"
    )
    assert "region us-ashburn-1" in _messages(report, gaps_run, "backup-allowance", "copied")
    types = "always-free-resource-types"
    assert "oci:Core/instancePool:InstancePool 'pool'" in _messages(report, gaps_run, types, "pool")
    assert "oci:Core/volumeGroup:VolumeGroup 'group'" in _messages(report, gaps_run, types, "group")
    hardening = "container-hardening"
    escape = _messages(report, gaps_run, hardening, "escape")
    for part in (
        "networkMode host",
        "pidMode host",
        "ipcMode host",
        "usernsMode host",
        "cgroupnsMode host",
        "reaches the host devices /dev/sda",
        "requests host devices through a device driver",
        "turns seccomp off (seccomp=unconfined)",
        "turns AppArmor off (apparmor=unconfined)",
        "mounts the Docker socket /run/./docker.sock",
        "mounts the Docker socket /var/run//docker.sock",
        "runs as root (user 0:0) with DAC_READ_SEARCH",
    ):
        assert part in escape
    assert "/etc writable" in _messages(report, gaps_run, hardening, "bound")
    assert "docker:index/service:Service 'swarm'" in _messages(report, gaps_run, hardening, "swarm")


# Two hosts as the program of hosts makes them: the A1 and an E2.1.Micro (a fixed shape: no
# shape_config), each with its own docker.Provider. `{…}` fields are what each fixture varies.
TWO_HOSTS_PROGRAM = """
import pulumi
import pulumi_docker as docker
import pulumi_oci as oci

def host(name, shape, shape_config, boot_gb):
    oci.core.Instance(
        name,
        availability_domain="AD-1",
        compartment_id="compartment",
        shape=shape,
        shape_config=shape_config,
        source_details=oci.core.InstanceSourceDetailsArgs(
            source_type="image", source_id="image", boot_volume_size_in_gbs=boot_gb
        ),
        create_vnic_details=oci.core.InstanceCreateVnicDetailsArgs(
            subnet_id="subnet", assign_public_ip="true"
        ),
        freeform_tags={{"ai-swarm-host": name}},
        opts=pulumi.ResourceOptions(ignore_changes=["sourceDetails.sourceId"]),
    )

a1_size = oci.core.InstanceShapeConfigArgs(ocpus=2, memory_in_gbs=12)
host("app", "VM.Standard.A1.Flex", a1_size, "50")
host("replica", "VM.Standard.E2.1.Micro", None, "50")
oci.core.Volume(
    "data", compartment_id="compartment", availability_domain="AD-1", size_in_gbs="{data_gb}",
    opts=pulumi.ResourceOptions(protect=True),
)
digest = "@sha256:" + "a" * 64
hardened = dict(
    capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
    security_opts=["no-new-privileges:true"],
    user="70:70",
)
for key, prefix, platform, ip in (
    ("app", "", "linux/arm64", "{app_ip}"),
    ("replica", "replica-", "{replica_platform}", "10.0.1.11"),
):
    provider = docker.Provider(f"{{prefix}}docker", host=f"ssh://ubuntu@{{key}}.example")
    on_host = pulumi.ResourceOptions(provider=provider)
    image = docker.RemoteImage(
        f"{{prefix}}postgres-image", name="postgres:15.8-alpine" + digest, platform=platform,
        keep_locally=True, opts=on_host,
    )
    docker.Container(
        "postgres-replica" if key == "replica" else "postgres",
        name="postgres-replica" if key == "replica" else "postgres",
        image=image.image_id,
        platform=platform,
        cpus="0.25",
        memory={{"app": 1536, "replica": {replica_mb}}}[key],
        labels=[docker.ContainerLabelArgs(label="ai-swarm.host", value=key)],
        ports=[docker.ContainerPortArgs(internal=5432, external=5432, ip=ip)],
        opts=on_host,
        **hardened,
    )
"""


def _two_hosts_run(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    data_gb: int = 100,
    app_ip: str = "10.0.1.10",
    replica_platform: str = "linux/amd64",
    replica_mb: int = 448,
) -> ProgramRun:
    program = TWO_HOSTS_PROGRAM.format(
        data_gb=data_gb, app_ip=app_ip, replica_platform=replica_platform, replica_mb=replica_mb
    )
    return _program_run(tmp_path_factory, program)


def test_the_sdk_made_two_host_layout_passes_the_pack(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = _two_hosts_run(tmp_path_factory)
    micro = next(r for r in run.of_type("oci:Core/instance:Instance") if r.name == "replica")
    assert "shapeConfig" not in micro.inputs  # a fixed shape, as the SDK sends it
    report = evaluate(run.registrations)
    assert report.diagnostics == ()


def test_each_two_host_rule_fails_on_sdk_made_resources(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = _two_hosts_run(
        tmp_path_factory,
        data_gb=101,  # 50 + 50 boot + 101 GB
        app_ip="0.0.0.0",  # Postgres on every interface of the A1
        replica_platform="linux/arm64",  # arm64 image and container on the Micro
        replica_mb=600,  # over 1,024 - 512 MB
    )
    urn = {r.name: r.urn for r in run.registrations}
    report = evaluate(run.registrations)
    assert {(d.policy, d.urn) for d in report.mandatory_violations} == {
        ("block-storage-allowance", ""),
        ("no-public-ingress", urn["postgres"]),
        ("postgres-bind-address", urn["postgres"]),
        ("image-platforms", urn["replica-postgres-image"]),
        ("image-platforms", urn["postgres-replica"]),
        ("host-memory-budget", urn["replica"]),
    }
    assert report.advisories == ()
