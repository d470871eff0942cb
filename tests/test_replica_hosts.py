"""The two layouts as configured: the A1 host alone, and with `ai-swarm:replica.enabled` the A1
host and an x86 E2.1.Micro, each with its own Docker provider, platform and budget, and the
A1's Postgres port opened to the replica's peers only while the replica exists."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from components.services.base import HOST_LABEL
from dryrun.engine import ProgramRun, Registration, run_program
from tests.services.readers import COMMAND, CONTAINER, INSTANCE, NETWORK, PROVIDER, REMOTE_IMAGE
from tests.test_hosts import provider_name
from tests.test_inputs import digests, recorded

SECURITY_LIST = "oci:Core/securityList:SecurityList"
VOLUME = "oci:Core/volume:Volume"
ATTACHMENT = "oci:Core/volumeAttachment:VolumeAttachment"
PUBLIC_IP = "oci:Core/publicIp:PublicIp"
MICRO_ADDRESS = "10.0.1.11"
EXTERNAL = "198.51.100.7/32"
REPLICA_ON = {
    "replica": json.dumps({"enabled": True, "externalCidrs": [EXTERNAL]}),
    "dataVolumeGb": "100",
}


@pytest.fixture(scope="module")
def replica_run() -> ProgramRun:
    return run_program(overrides=REPLICA_ON)


@pytest.fixture(scope="module")
def small_volume_run() -> ProgramRun:
    """The same data volume without the replica: what the replica adds, and nothing else."""
    return run_program(overrides={"dataVolumeGb": "100"})


def _instance(run: ProgramRun, name: str) -> dict[str, Any]:
    inputs = run.one(INSTANCE, name).inputs
    assert isinstance(inputs, dict)
    return inputs


def _user_data(run: ProgramRun, name: str) -> dict[str, Any]:
    text = base64.b64decode(_instance(run, name)["metadata"]["user_data"]).decode()
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def _postgres_sources(run: ProgramRun) -> set[str]:
    rules = run.one(SECURITY_LIST).inputs["ingressSecurityRules"]
    return {
        rule["source"]
        for rule in rules
        if rule["protocol"] == "6"
        and rule["tcpOptions"]["min"] <= 5432 <= rule["tcpOptions"]["max"]
    }


def _labels(container: Registration) -> dict[str, str]:
    return {label["label"]: label["value"] for label in container.inputs["labels"]}


def test_the_default_layout_is_the_a1_alone(always_free_run: ProgramRun) -> None:
    assert [r.name for r in always_free_run.of_type(INSTANCE)] == ["host-instance"]
    assert [p.name for p in always_free_run.of_type(PROVIDER)] == ["docker"]
    assert always_free_run.outputs["replica"] is None
    assert _postgres_sources(always_free_run) == set()


def test_the_replica_is_a_micro_with_a_fixed_shape_and_only_a_boot_volume(
    replica_run: ProgramRun,
) -> None:
    micro = _instance(replica_run, "replica-instance")
    assert micro["shape"] == "VM.Standard.E2.1.Micro"
    assert "shapeConfig" not in micro  # a fixed shape takes none
    assert micro["sourceDetails"]["bootVolumeSizeInGbs"] == "50"
    assert micro["createVnicDetails"]["privateIp"] == MICRO_ADDRESS
    assert micro["createVnicDetails"]["assignPublicIp"] == "true"
    a1 = _instance(replica_run, "host-instance")
    assert a1["createVnicDetails"]["assignPublicIp"] == "false"
    # One data volume, one attachment, one reserved IP: the A1's.
    for kind in (VOLUME, ATTACHMENT, PUBLIC_IP):
        assert [r.name.split("-")[0] for r in replica_run.of_type(kind)] == ["host"], kind
    # Its image is looked up for its own shape (and so its architecture).
    shapes = sorted(
        i.args["shape"] for i in replica_run.invokes if i.token == "oci:Core/getImages:getImages"
    )
    assert shapes == ["VM.Standard.A1.Flex", "VM.Standard.E2.1.Micro"]


def test_a_replaced_micro_frees_its_address_first(replica_run: ProgramRun) -> None:
    micro = replica_run.one(INSTANCE, "replica-instance")
    assert micro.delete_before_replace
    assert "sourceDetails.sourceId" in micro.ignore_changes
    assert micro.protect is False  # nothing on it the replica cannot copy again


def test_every_block_volume_fits_the_free_200_gb(replica_run: ProgramRun) -> None:
    boots = [
        int(r.inputs["sourceDetails"]["bootVolumeSizeInGbs"]) for r in replica_run.of_type(INSTANCE)
    ]
    data = [int(r.inputs["sizeInGbs"]) for r in replica_run.of_type(VOLUME)]
    assert sum(boots) + sum(data) == 200


def test_two_providers_each_over_its_hosts_address(replica_run: ProgramRun) -> None:
    providers = {p.name: p for p in replica_run.of_type(PROVIDER)}
    assert set(providers) == {"docker", "replica-docker"}
    reserved = replica_run.one(PUBLIC_IP).urn
    micro = replica_run.one(INSTANCE, "replica-instance").urn
    assert providers["docker"].property_dependencies["host"] == (reserved,)
    # The Micro is reached at its ephemeral address, an output of its instance.
    assert providers["replica-docker"].property_dependencies["host"] == (micro,)
    assert providers["replica-docker"].inputs["host"] == "ssh://ubuntu@192.0.2.11"


def test_every_docker_resource_is_on_its_hosts_provider_and_platform(
    replica_run: ProgramRun,
) -> None:
    provider_of_host = {"host": "docker", "replica": "replica-docker"}
    platform_of_provider = {"docker": "linux/arm64", "replica-docker": "linux/amd64"}
    images = replica_run.of_type(REMOTE_IMAGE)
    for image in images:
        assert image.inputs["platform"] == platform_of_provider[provider_name(image)], image.name
    on_micro = set()
    for container in replica_run.of_type(CONTAINER):
        host = _labels(container)[HOST_LABEL]
        assert provider_name(container) == provider_of_host[host], container.name
        [image] = [i for i in images if i.parent == container.parent]
        assert provider_name(image) == provider_name(container)
        assert container.property_dependencies["image"] == (image.urn,)
        if host == "replica":
            on_micro.add(container.inputs["name"])
    assert on_micro == {"node-exporter", "postgres-replica"}
    networks = {(n.name, provider_name(n)) for n in replica_run.of_type(NETWORK)}
    assert networks == {
        ("services-network", "docker"),
        ("replica-services-network", "replica-docker"),
    }


def test_the_micros_containers_fit_its_memory_less_the_os_reserve(
    replica_run: ProgramRun,
) -> None:
    micro = [c for c in replica_run.of_type(CONTAINER) if _labels(c)[HOST_LABEL] == "replica"]
    memory = {c.inputs["name"]: c.inputs["memory"] for c in micro}
    assert memory == {"node-exporter": 64, "postgres-replica": 320}
    # 1 GB less the 512 MB kept for Ubuntu and Docker.
    assert sum(memory.values()) <= 1024 - 512
    a1 = {c.inputs["name"]: c.inputs["memory"] for c in replica_run.of_type(CONTAINER)}
    assert a1["postgres"] == 1536  # the A1's own table, unchanged


def test_the_micro_boots_with_its_data_on_the_boot_volume_and_a_swap_file(
    replica_run: ProgramRun,
) -> None:
    document = _user_data(replica_run, "replica-instance")
    assert document["swap"] == {
        "filename": "/swapfile",
        "size": 1024 * 1024 * 1024,
        "maxsize": 1024 * 1024 * 1024,
    }
    fstab = [f["content"] for f in document["write_files"] if f["path"] == "/etc/fstab"]
    assert fstab == ["/srv/ai-swarm-data /mnt/data none bind,nofail 0 0\n"]
    # The same baseline as the A1: Docker, updates, its own SSH host key, the same steps.
    a1 = _user_data(replica_run, "host-instance")
    assert document["runcmd"] == a1["runcmd"]
    paths = [f["path"] for f in document["write_files"]]
    assert paths == [f["path"] for f in a1["write_files"]]
    assert document["ssh_keys"]["ed25519_public"] != a1["ssh_keys"]["ed25519_public"]


def test_the_micros_readiness_gate_checks_its_bound_data_and_swap(
    replica_run: ProgramRun,
) -> None:
    ready = replica_run.one(COMMAND, "replica-ready")
    script = ready.inputs["create"]
    assert "stat -c %d /mnt/data" in script and "swapon" in script
    assert "blkid" not in script  # no labelled volume to look for
    micro = replica_run.one(INSTANCE, "replica-instance")
    assert ready.property_dependencies["triggers"] == (micro.urn,)


def test_the_replica_output_names_the_micro(replica_run: ProgramRun) -> None:
    replica = replica_run.outputs["replica"]
    micro = replica_run.ids[replica_run.one(INSTANCE, "replica-instance").urn]
    assert replica["instanceId"] == micro
    assert replica["publicIp"] == "192.0.2.11"
    assert replica["privateIp"] == MICRO_ADDRESS
    assert replica["sshCommand"].endswith(" ubuntu@192.0.2.11")
    assert micro in replica["sshCommand"]  # its own known-hosts file


def test_postgres_is_admitted_from_the_peers_only_while_the_replica_exists(
    replica_run: ProgramRun, small_volume_run: ProgramRun
) -> None:
    assert _postgres_sources(replica_run) == {f"{MICRO_ADDRESS}/32", EXTERNAL}
    assert _postgres_sources(small_volume_run) == set()


def _firewall(run: ProgramRun, name: str) -> str:
    script = run.one(COMMAND, name).inputs["create"]
    assert isinstance(script, str)
    return script


def test_the_a1_firewall_admits_postgres_from_the_peers_and_the_micros_does_not(
    replica_run: ProgramRun, small_volume_run: ProgramRun
) -> None:
    a1 = _firewall(replica_run, "host-settings-firewall")
    for peer in (f"{MICRO_ADDRESS}/32", EXTERNAL):
        assert f"-s {peer} -p tcp" in a1 and "--ctorigdstport 5432 -j RETURN" in a1
    assert "--ctorigdstport" not in _firewall(replica_run, "replica-settings-firewall")
    assert "--ctorigdstport" not in _firewall(small_volume_run, "host-settings-firewall")


def test_enabling_the_replica_changes_no_other_input_of_the_a1(
    replica_run: ProgramRun, small_volume_run: ProgramRun
) -> None:
    """Turned on, the replica adds its host and changes only the two rules that admit it and
    the primary's Postgres container (its replication settings, TLS files and published port:
    tests/test_postgres_replication.py)."""
    before, after = digests(small_volume_run), digests(replica_run)
    changed = sorted(urn.rsplit("::", 1)[1] for urn in before if after.get(urn) != before[urn])
    assert changed == ["host-settings-firewall", "postgres-postgres", "swarm-admin-ingress"]
    added = {urn.rsplit("::", 1)[1] for urn in set(after) - set(before)}
    # The replica's host and the replication's TLS, roles and reconcile steps.
    assert all(name.startswith(("replica", "postgres-replication")) for name in added), added


def test_the_default_stacks_inputs_are_the_recorded_ones_and_the_volume_alone_differs(
    small_volume_run: ProgramRun,
) -> None:
    """The recorded inputs are the default stack's; a smaller data volume changes the volume
    and nothing else (no launch input of the instance: it is not replaced)."""
    before, after = recorded(), digests(small_volume_run)
    assert set(after) == set(before)
    changed = sorted(urn.rsplit("::", 1)[1] for urn in before if after[urn] != before[urn])
    assert changed == ["host-data"]


def test_turning_the_replica_off_meets_no_protected_resource(replica_run: ProgramRun) -> None:
    """Everything the replica adds goes with its setting: nothing of it is protected."""
    added = [r for r in replica_run.registrations if r.name.startswith("replica")]
    assert {r.type for r in added} >= {INSTANCE, "tls:index/privateKey:PrivateKey", PROVIDER}
    assert [r.name for r in added if r.protect or r.retain_on_delete] == []
    # The A1's host key stays protected: a new one would replace the A1.
    assert replica_run.one("tls:index/privateKey:PrivateKey", "host-ssh-host-key").protect
