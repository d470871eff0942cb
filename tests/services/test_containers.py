"""What every service container shares: image, platform, limits, health, logs, labels, network."""

from __future__ import annotations

import pytest

from components.host import DATA_ROOT, HOST_TAG
from components.services.catalog import CATALOG, CONFIGURABLE, NETWORK_SUBNET
from components.sizing import ALLOCATIONS
from dryrun.engine import ProgramRun
from tests.helpers import MAX_LOGS_MB, log_size_mb
from tests.services.readers import (
    COMMAND,
    CONTAINER,
    INSTANCE,
    NETWORK,
    PROVIDER,
    REMOTE_IMAGE,
    SERVICE_PREFIX,
    binds,
    component,
    container,
    instance_id,
    label,
    owner,
    ssh_options,
)

IDS = [name for entry in CONFIGURABLE.values() for name in entry.containers]
MOVING_TAGS = {"latest", "main", "main-latest", "main-stable", "stable", "dev"}
# The only container outside the services' network: it needs the host's own view.
HOST_VIEW = {"node-exporter"}


def test_seven_service_components_with_their_exact_names(free_run: ProgramRun) -> None:
    found = {r.type for r in free_run.registrations if r.type.startswith(SERVICE_PREFIX)}
    expected = {"Postgres", "Redis", "NodeExporter", "LiteLLM", "OpenWebUI", "Pipelines", "Vault"}
    assert found == {SERVICE_PREFIX + name for name in expected}
    assert {r.custom for r in free_run.registrations if r.type in found} == {False}


@pytest.mark.parametrize("name", IDS)
def test_container_runs_its_services_pinned_arm64_image(free_run: ProgramRun, name: str) -> None:
    service = CATALOG[owner(free_run, container(free_run, name)).name]
    images = [
        r
        for r in free_run.of_type(REMOTE_IMAGE)
        if r.parent == component(free_run, service.name).urn
    ]
    assert len(images) == 1
    image = images[0]
    assert image.inputs["name"] == service.image
    tag = service.image.rsplit("/", 1)[-1].partition(":")[2]
    assert tag and tag not in MOVING_TAGS
    assert image.inputs["platform"] == "linux/arm64"
    assert image.inputs["keepLocally"] is True
    registration = container(free_run, name)
    # The image id (not the name, which diffs forever; not the digest, which replaces each up).
    assert registration.property_dependencies["image"] == (image.urn,)
    assert registration.inputs["image"].startswith("sha256:")


@pytest.mark.parametrize("run_name", ["free_run", "big_run"])
@pytest.mark.parametrize("name", IDS)
def test_limits_come_from_the_profiles_table(
    request: pytest.FixtureRequest, run_name: str, name: str
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    allocation = ALLOCATIONS[run.outputs["profile"]][name]
    inputs = container(run, name).inputs
    assert inputs["cpus"] == allocation.cpus
    assert isinstance(inputs["cpus"], str)
    assert inputs["memory"] == allocation.memory_mb
    assert 0 < inputs["memoryReservation"] < inputs["memory"]


@pytest.mark.parametrize("name", IDS)
def test_container_is_waited_for_through_its_healthcheck(free_run: ProgramRun, name: str) -> None:
    inputs = container(free_run, name).inputs
    health = inputs["healthcheck"]
    assert health["tests"][0] in ("CMD", "CMD-SHELL")
    assert len(health["tests"]) > 1
    assert health["retries"] >= 1
    assert inputs["wait"] is True
    start_period = int(health["startPeriod"].removesuffix("s"))
    assert inputs["waitTimeout"] > start_period


@pytest.mark.parametrize("name", IDS)
def test_container_restarts_and_keeps_bounded_logs(free_run: ProgramRun, name: str) -> None:
    inputs = container(free_run, name).inputs
    assert inputs["restart"] == "unless-stopped"
    assert inputs["logDriver"] == "json-file"
    assert set(inputs["logOpts"]) == {"max-size", "max-file"}
    options = inputs["logOpts"]
    assert log_size_mb(options["max-size"]) * int(options["max-file"]) <= MAX_LOGS_MB


@pytest.mark.parametrize("name", IDS)
def test_replacement_waits_for_the_old_container_to_go(free_run: ProgramRun, name: str) -> None:
    # The new container needs the same name, data directory and host port.
    assert container(free_run, name).delete_before_replace is True


@pytest.mark.parametrize("name", IDS)
def test_container_is_labelled_with_the_instances_host_tag(free_run: ProgramRun, name: str) -> None:
    host_tag = free_run.one(INSTANCE).inputs["freeformTags"][HOST_TAG]
    registration = container(free_run, name)
    assert label(registration, "ai-swarm.host") == host_tag
    assert label(registration, "ai-swarm.service") == owner(free_run, registration).name


@pytest.mark.parametrize("name", sorted(set(IDS) - HOST_VIEW))
def test_container_joins_the_services_network_under_its_alias(
    free_run: ProgramRun, name: str
) -> None:
    network = free_run.one(NETWORK).inputs
    inputs = container(free_run, name).inputs
    assert inputs["networksAdvanced"] == [{"name": network["name"], "aliases": [name]}]
    assert "networkMode" not in inputs


def test_services_network_is_a_private_bridge_with_a_fixed_subnet(free_run: ProgramRun) -> None:
    network = free_run.one(NETWORK)
    assert network.inputs["driver"] == "bridge"
    assert network.inputs["attachable"] is False
    assert network.inputs["ipamConfigs"] == [{"subnet": str(NETWORK_SUBNET)}]
    host_tag = free_run.one(INSTANCE).inputs["freeformTags"][HOST_TAG]
    assert network.inputs["labels"] == [
        {"label": "ai-swarm.host", "value": host_tag},
        {"label": "ai-swarm.instance", "value": instance_id(free_run)},
    ]


# container: {host path: container path}; each service keeps its state under /mnt/data/<service>.
DATA_DIRS = {
    "postgres": {"postgres": "/var/lib/postgresql/data"},
    "redis": {"redis/master": "/data"},
    "redis-sentinel": {"redis/sentinel": "/data"},
    "node-exporter": {},
    "litellm": {},  # keeps its state in Postgres
    "open-webui": {"open-webui": "/app/backend/data"},
    "pipelines": {"pipelines": "/app/pipelines"},
    "vault": {"vault/raft": "/openbao/raft"},
    "vault-agent": {},  # its files are uploads, its rendered output a tmpfs volume
}


def test_data_directories_cover_every_container() -> None:
    assert set(DATA_DIRS) == set(IDS)


@pytest.mark.parametrize("name", IDS)
def test_state_lives_on_the_data_volume(free_run: ProgramRun, name: str) -> None:
    registration = container(free_run, name)
    assert binds(registration) == {
        f"{DATA_ROOT}/{host}": inside for host, inside in DATA_DIRS[name].items()
    }
    # Docker `volumes` binds make a missing host directory, on the boot disk if the data
    # volume is not mounted: none may be used, whatever the path.
    assert "volumes" not in registration.inputs


@pytest.mark.parametrize("name", [name for name in IDS if DATA_DIRS[name]])
def test_data_directories_are_made_on_the_mounted_volume_first(
    free_run: ProgramRun, name: str
) -> None:
    registration = container(free_run, name)
    # The host command named after the container's data directories.
    [made] = [
        free_run.by_urn()[urn]
        for urn in registration.dependencies
        if free_run.by_urn()[urn].type == COMMAND
        and free_run.by_urn()[urn].name.endswith(f"{name}-data-dirs")
    ]
    script = made.inputs["create"]
    assert script.index("mountpoint -q /mnt/data") < script.index("mkdir -p")
    assert set(script.split("mkdir -p ", 1)[1].splitlines()[0].split()) == set(binds(registration))
    assert made.inputs["triggers"] == [instance_id(free_run)]


def test_every_docker_resource_follows_the_instance(free_run: ProgramRun) -> None:
    """A replaced instance has a new OCID: every container and image must see it."""
    current = instance_id(free_run)
    for registration in free_run.of_type(CONTAINER):
        assert label(registration, "ai-swarm.instance") == current
    for image in free_run.of_type(REMOTE_IMAGE):
        assert image.inputs["triggers"] == {"instance": current}


@pytest.mark.parametrize("run_name", ["free_run", "exposed_run"])
def test_no_port_is_published_on_every_interface(
    request: pytest.FixtureRequest, run_name: str
) -> None:
    run: ProgramRun = request.getfixturevalue(run_name)
    published = [p for r in run.of_type(CONTAINER) for p in r.inputs.get("ports", [])]
    assert published  # the UIs publish theirs
    assert all(p["ip"] not in ("0.0.0.0", "::", "") for p in published)


def test_every_docker_resource_uses_the_hosts_provider(free_run: ProgramRun) -> None:
    provider = free_run.one(PROVIDER)
    docker_resources = [r for r in free_run.registrations if r.type.startswith("docker:")]
    # A container each, an image per service, the services' network, the Agent's tmpfs volume.
    assert len(docker_resources) == len(IDS) + len(CONFIGURABLE) + 2
    # A provider reference is "<urn>::<id>".
    assert {r.provider.rsplit("::", 1)[0] for r in docker_resources} == {provider.urn}


def test_provider_reaches_the_host_over_ssh_after_it_is_ready(free_run: ProgramRun) -> None:
    provider = free_run.one(PROVIDER)
    ready = [r for r in free_run.of_type(COMMAND) if r.name.endswith("-ready")]
    assert len(ready) == 1
    assert ready[0].urn in provider.dependencies
    assert provider.inputs["host"] == free_run.outputs["dockerHost"]
    assert provider.inputs["host"].startswith("ssh://ubuntu@")
    options = ssh_options(free_run)
    assert options[options.index("BatchMode=yes") - 1] == "-o"
    assert "StrictHostKeyChecking=accept-new" in options
    assert "-i" not in options  # without sshIdentityFile: the agent or ~/.ssh/config


def test_images_pull_in_parallel_waiting_for_the_instance_only(free_run: ProgramRun) -> None:
    instance = free_run.one(INSTANCE).urn
    for image in free_run.of_type(REMOTE_IMAGE):
        assert image.dependencies == (instance,)
