"""The A1 host: shape and sizes, image pinning, protected state, reserved IP, readiness gate,
fixed names, and a cloud-config that no setting changes."""

from __future__ import annotations

import json
import shlex

import pytest

from ai_swarm_policies.contract import REMOTE_COMMAND as READY
from ai_swarm_policies.contract import VOLUME
from ai_swarm_policies.contract import VOLUME_ATTACHMENT as ATTACHMENT
from components.cloud_init import (
    DOCKER_DROP_IN,
    INSTALL_PACKAGES_SCRIPT,
    PACKAGES,
    PREPARE_DATA_SCRIPT,
)
from dryrun.engine import UNKNOWN, ProgramRun, run_program
from tests.helpers import INSTANCE, MAX_LOGS_MB, log_size_mb, user_data, user_data_text
from tests.services.readers import instance_id


def test_host_component_owns_its_resources(always_free_run: ProgramRun) -> None:
    host = always_free_run.one("ai-swarm:oci:ArmHost", "host")
    children = {r.type for r in always_free_run.registrations if r.parent == host.urn}
    assert children == {
        INSTANCE,
        VOLUME,
        ATTACHMENT,
        "oci:Core/publicIp:PublicIp",
        READY,
        "tls:index/privateKey:PrivateKey",  # the SSH host key
    }


def test_instance_is_an_a1_flex_with_both_sizes_set(always_free_run: ProgramRun) -> None:
    instance = always_free_run.one(INSTANCE).inputs
    assert instance["shape"] == "VM.Standard.A1.Flex"
    assert instance["shapeConfig"] == {"ocpus": 2, "memoryInGbs": 12}
    assert instance["sourceDetails"]["bootVolumeSizeInGbs"] == "50"
    assert instance["freeformTags"] == {"ai-swarm-host": "host"}  # the component, not hostName
    assert instance["createVnicDetails"]["assignPublicIp"] == "false"


def test_newest_ubuntu_2404_image_for_the_a1_shape(always_free_run: ProgramRun) -> None:
    [lookup] = [i for i in always_free_run.invokes if i.token == "oci:Core/getImages:getImages"]
    assert lookup.args["operatingSystem"] == "Canonical Ubuntu"
    assert lookup.args["operatingSystemVersion"] == "24.04"
    assert lookup.args["shape"] == "VM.Standard.A1.Flex"
    assert (lookup.args["sortBy"], lookup.args["sortOrder"]) == ("TIMECREATED", "DESC")
    source_id = always_free_run.one(INSTANCE).inputs["sourceDetails"]["sourceId"]
    assert source_id.endswith("aarch64-1")  # the first (newest) of the images the mock lists


def test_running_host_is_never_reimaged_nor_doubled(always_free_run: ProgramRun) -> None:
    instance = always_free_run.one(INSTANCE)
    assert instance.ignore_changes == ("sourceDetails.sourceId",)
    # The allowance fits one host: the old one goes before a replacement is made.
    assert instance.delete_before_replace
    # ... and its boot volume with it: a kept one would hold 50 of the 200 free GB for nothing.
    assert instance.inputs["preserveBootVolume"] is False


def test_docker_bounds_every_containers_logs(always_free_run: ProgramRun) -> None:
    """Containers started by hand get the daemon's defaults: small, rotated json-file logs."""
    files = {f["path"]: f["content"] for f in user_data(always_free_run)["write_files"]}
    daemon = json.loads(files["/etc/docker/daemon.json"])
    assert daemon["log-driver"] == "json-file"
    options = daemon["log-opts"]
    assert log_size_mb(options["max-size"]) * int(options["max-file"]) <= MAX_LOGS_MB


def test_data_volume_is_protected_retained_and_attached(always_free_run: ProgramRun) -> None:
    volume = always_free_run.one(VOLUME)
    assert volume.protect
    assert volume.retain_on_delete
    assert volume.inputs["sizeInGbs"] == "150"
    attachment = always_free_run.one(ATTACHMENT).inputs
    assert attachment["attachmentType"] == "paravirtualized"
    assert attachment["device"] == "/dev/oracleoci/oraclevdb"
    assert attachment["volumeId"] == "host-data-id"
    assert attachment["instanceId"] == instance_id(always_free_run)


def test_data_volume_is_made_only_once_the_instance_launched(always_free_run: ProgramRun) -> None:
    """A launch refused for capacity then leaves no protected volume pinning the stack to that
    availability domain (`python -m deploy up` moves on to the next one)."""
    assert always_free_run.one(INSTANCE).urn in always_free_run.one(VOLUME).dependencies


def test_volume_lives_in_the_instances_availability_domain(always_free_run: ProgramRun) -> None:
    domain = always_free_run.one(INSTANCE).inputs["availabilityDomain"]
    assert always_free_run.one(VOLUME).inputs["availabilityDomain"] == domain


def test_reserved_public_ip_is_bound_to_the_primary_private_ip(
    always_free_run: ProgramRun,
) -> None:
    public_ip = always_free_run.one("oci:Core/publicIp:PublicIp").inputs
    assert public_ip["lifetime"] == "RESERVED"
    # The mock lists a secondary private IP first: the primary one must be chosen.
    assert public_ip["privateIpId"] == f"{instance_id(always_free_run)}-vnic-private-ip"


def test_readiness_gate_waits_for_cloud_init_docker_and_the_mount(
    always_free_run: ProgramRun,
) -> None:
    ready = always_free_run.one(READY, "host-ready")
    script = ready.inputs["create"]
    assert "cloud-init status --wait" in script
    # Which volume it accepts: tests/integration/test_host_scripts.py runs it on loop devices.
    assert "--mountpoint /mnt/data" in script
    assert "docker info" in script
    connection = ready.inputs["connection"]
    assert connection["dialErrorLimit"] == -1
    assert connection["user"] == "ubuntu"
    assert connection["host"] == "192.0.2.10"
    assert "connection" in ready.secret_paths  # the private key travels as a secret
    attachment = always_free_run.one(ATTACHMENT)
    assert attachment.urn in ready.dependencies
    assert ready.inputs["triggers"] == [
        instance_id(always_free_run),
        "host-data-attachment-id",
    ]


def test_outputs_give_the_ip_ssh_command_and_docker_host(always_free_run: ProgramRun) -> None:
    outputs = always_free_run.outputs
    assert outputs["publicIp"] == "192.0.2.10"
    assert outputs["dockerHost"] == "ssh://ubuntu@192.0.2.10"
    assert outputs["instanceId"] == instance_id(always_free_run)
    # The user's own ssh keeps the host key per instance too: a replaced host needs no edit.
    assert shlex.split(outputs["sshCommand"]) == [
        "ssh",
        "-o",
        f"UserKnownHostsFile=~/.ssh/known_hosts.ai-swarm.{instance_id(always_free_run)}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "ubuntu@192.0.2.10",
    ]


def test_private_ip_is_fixed_inside_the_subnet_and_known_at_preview(
    preview_run: ProgramRun,
) -> None:
    vnic = preview_run.one(INSTANCE).inputs["createVnicDetails"]
    assert vnic["privateIp"] == "10.0.1.10"
    moved = run_program(overrides={"subnetCidr": "10.0.8.0/28"})
    assert moved.one(INSTANCE).inputs["createVnicDetails"]["privateIp"] == "10.0.8.10"


def test_preview_keeps_sizes_known_and_created_values_unknown(preview_run: ProgramRun) -> None:
    instance = preview_run.one(INSTANCE).inputs
    assert instance["shapeConfig"] == {"ocpus": 2, "memoryInGbs": 12}
    assert instance["createVnicDetails"]["subnetId"] is UNKNOWN
    assert preview_run.outputs["publicIp"] is UNKNOWN


def test_user_data_fits_the_metadata_limit(always_free_run: ProgramRun) -> None:
    encoded = always_free_run.one(INSTANCE).inputs["metadata"]["user_data"]
    assert len(encoded) < 32_000


def test_user_data_is_a_cloud_config_with_docker_and_updates(always_free_run: ProgramRun) -> None:
    assert user_data_text(always_free_run).startswith("#cloud-config\n")
    document = user_data(always_free_run)
    files = {entry["path"]: entry for entry in document["write_files"]}
    # Packages come from the script that waits for egress, not from cloud-init's own step.
    assert "packages" not in document
    assert "package_update" not in document
    install = files[INSTALL_PACKAGES_SCRIPT]["content"]
    assert f"install -y --no-install-recommends {' '.join(PACKAGES)}" in install
    assert {"docker.io", "unattended-upgrades"} <= set(PACKAGES)
    assert ["usermod", "-aG", "docker", "ubuntu"] in document["runcmd"]
    assert 'Unattended-Upgrade "1"' in files["/etc/apt/apt.conf.d/20auto-upgrades"]["content"]


def test_first_boot_mounts_the_volume_then_installs_then_starts_docker(
    always_free_run: ProgramRun,
) -> None:
    runcmd = user_data(always_free_run)["runcmd"]
    order = [
        runcmd.index([PREPARE_DATA_SCRIPT]),
        runcmd.index([INSTALL_PACKAGES_SCRIPT]),
        runcmd.index(["systemctl", "enable", "--now", "docker"]),
    ]
    assert order == sorted(order)


def test_docker_waits_for_the_data_mount(always_free_run: ProgramRun) -> None:
    files = {entry["path"]: entry for entry in user_data(always_free_run)["write_files"]}
    assert DOCKER_DROP_IN.startswith("/etc/systemd/system/docker.service.d/")
    assert files[DOCKER_DROP_IN]["content"] == "[Unit]\nRequiresMountsFor=/mnt/data\n"


def test_user_data_mounts_the_data_volume_without_blocking_boot(
    always_free_run: ProgramRun,
) -> None:
    document = user_data(always_free_run)
    files = {entry["path"]: entry for entry in document["write_files"]}
    fstab = files["/etc/fstab"]
    assert fstab["append"] is True
    device, mount_point, fs_type, options, *_ = fstab["content"].split()
    assert (device, mount_point, fs_type) == ("LABEL=ai-swarm-data", "/mnt/data", "ext4")
    assert "nofail" in options.split(",")
    prepare = files["/usr/local/sbin/ai-swarm-prepare-data"]
    # What it formats: tests/integration/test_cloud_init.py boots it on loop devices.
    assert "blkid -p /dev/oracleoci/oraclevdb" in prepare["content"]
    assert [prepare["path"]] in document["runcmd"]


# Settings that may change over a host's life; none of them may reach the cloud-config.
HOST_SETTINGS = [
    {"adminCidrs": '["203.0.113.0/28", "192.0.2.0/24"]'},
    {"exposeUis": "true"},
    {"hostName": "renamed-host"},
    {"services": '{"openWebui": {"enabled": false}}'},
]


@pytest.mark.parametrize("settings", HOST_SETTINGS, ids=lambda s: next(iter(s)))
def test_user_data_is_byte_identical_whatever_the_settings(
    always_free_run: ProgramRun, settings: dict[str, str]
) -> None:
    changed = run_program(overrides=settings)
    assert user_data_text(changed).encode() == user_data_text(always_free_run).encode()


def test_the_cloud_config_holds_no_firewall_or_address(always_free_run: ProgramRun) -> None:
    text = user_data_text(always_free_run)
    for setting in ("iptables", "198.51.100.7", "netfilter-persistent", "swarm-a1"):
        assert setting not in text
