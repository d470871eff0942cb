"""Hosts, not a host: each Docker resource is made on its own host's provider, for its platform.

A second x86 Micro with Postgres on it is composed here through the component API
(`tests/two_hosts_program.py`): any spec is placed on its own host, whatever config layouts
exist. The configured layouts (`ai-swarm:replica`) are tested in `tests/test_replica_hosts.py`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from components.services.base import HOST_LABEL
from dryrun.engine import PROJECT_DIR, ProgramRun, Registration, run_program
from tests.services.readers import COMMAND, CONTAINER, NETWORK, PROVIDER, REMOTE_IMAGE

PUBLIC_IP = "oci:Core/publicIp:PublicIp"
HOST_KEY = "tls:index/privateKey:PrivateKey"


@pytest.fixture(scope="module")
def two_hosts_run(tmp_path_factory: pytest.TempPathFactory) -> ProgramRun:
    project = tmp_path_factory.mktemp("two-hosts")
    shutil.copy(Path(__file__).parent / "two_hosts_program.py", project / "__main__.py")
    shutil.copy(PROJECT_DIR / "Pulumi.oracle.yaml", project)
    return run_program(stack="oracle", project_dir=project)


def provider_name(resource: Registration) -> str:
    """The name of the provider a resource is made with (`<provider URN>::<id>`)."""
    if not resource.provider:
        return "(the default provider)"
    urn = resource.provider.rsplit("::", 1)[0]
    return urn.rsplit("::", 1)[1]


def parent_name(run: ProgramRun, resource: Registration) -> str:
    return run.by_urn()[resource.parent].name


def test_each_host_has_its_own_docker_provider_over_its_own_address(
    two_hosts_run: ProgramRun,
) -> None:
    ips = {r.name: r.urn for r in two_hosts_run.of_type(PUBLIC_IP)}
    providers = {p.name: p for p in two_hosts_run.of_type(PROVIDER)}
    assert set(providers) == {"docker", "micro-docker"}
    assert providers["docker"].property_dependencies["host"] == (ips["host-ip"],)
    assert providers["micro-docker"].property_dependencies["host"] == (ips["micro-ip"],)


def test_images_are_pulled_for_their_hosts_platform_by_its_provider(
    two_hosts_run: ProgramRun,
) -> None:
    images = {
        (parent_name(two_hosts_run, image), image.inputs["platform"], provider_name(image))
        for image in two_hosts_run.of_type(REMOTE_IMAGE)
    }
    arm = ("postgres", "redis", "nodeExporter", "litellm", "openWebui", "pipelines", "vault")
    assert images == {
        *((service, "linux/arm64", "docker") for service in arm),
        ("micro-postgres", "linux/amd64", "micro-docker"),
        ("micro-nodeExporter", "linux/amd64", "micro-docker"),
    }


def test_containers_and_networks_run_on_their_hosts_provider(two_hosts_run: ProgramRun) -> None:
    provider_of_host = {"host": "docker", "micro": "micro-docker"}
    containers = two_hosts_run.of_type(CONTAINER)
    on_micro = set()
    for container in containers:
        labels = {label["label"]: label["value"] for label in container.inputs["labels"]}
        host = labels[HOST_LABEL]
        assert provider_name(container) == provider_of_host[host], container.name
        if host == "micro":
            on_micro.add(container.name)
        # The container's image is the one pulled on the same host.
        [image] = [
            r
            for r in two_hosts_run.of_type(REMOTE_IMAGE)
            if r.parent == container.parent and provider_name(r) == provider_name(container)
        ]
        assert container.property_dependencies["image"] == (image.urn,)
    assert on_micro == {"micro-postgres-postgres", "micro-nodeExporter-node-exporter"}
    networks = {(n.name, provider_name(n)) for n in two_hosts_run.of_type(NETWORK)}
    assert networks == {("services-network", "docker"), ("micro-services-network", "micro-docker")}


def test_a_hosts_ssh_steps_go_to_that_host(two_hosts_run: ProgramRun) -> None:
    ips = {r.name: r.urn for r in two_hosts_run.of_type(PUBLIC_IP)}
    host_keys = {r.name: r.urn for r in two_hosts_run.of_type(HOST_KEY)}
    data_dirs = two_hosts_run.one(COMMAND, "micro-postgres-postgres-data-dirs")
    # Its address and the host key it pins are the Micro's.
    assert set(data_dirs.property_dependencies["connection"]) == {
        ips["micro-ip"],
        host_keys["micro-ssh-host-key"],
    }


def test_each_hosts_image_is_looked_up_for_its_shape(two_hosts_run: ProgramRun) -> None:
    lookups = [i.args for i in two_hosts_run.invokes if i.token == "oci:Core/getImages:getImages"]
    assert sorted(args["shape"] for args in lookups) == [
        "VM.Standard.A1.Flex",
        "VM.Standard.E2.1.Micro",
    ]
    instances = {
        r.name: r.inputs["shape"] for r in two_hosts_run.of_type("oci:Core/instance:Instance")
    }
    assert instances == {
        "host-instance": "VM.Standard.A1.Flex",
        "micro-instance": "VM.Standard.E2.1.Micro",
    }
