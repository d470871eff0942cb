"""The pack on a program of hosts: the A1 and an E2.1.Micro (a fixed shape, no shapeConfig) with
its own Docker provider, through pulumi-policy's analyzer servicer. Each rule has a fixture
that passes and one that fails."""

from __future__ import annotations

from typing import Any

import pytest

from dryrun.synthetic import (
    container,
    docker_provider,
    instance,
    remote_image,
    volume,
)
from tests.policies.policy_requests import (
    UNKNOWN,
    Diagnostics,
    analyze,
    analyze_stack,
    analyzer,
    of_policy,
)

MICRO = "VM.Standard.E2.1.Micro"
PG_IMAGE = "postgres:15.8-alpine@sha256:" + "b" * 64


def only(diagnostics: Diagnostics, policy: str) -> Any:
    found = of_policy(diagnostics, policy)
    assert len(found) == 1, [d.message for d in diagnostics]
    return found[0]


def micro(name: str = "replica", boot_gb: str | None = "50") -> Any:
    """The replica host as the program makes it: a fixed shape, so no shapeConfig at all."""
    return instance(name, None, None, shape=MICRO, boot_gb=boot_gb)


def two_hosts(data_gb: str = "100") -> list[Any]:
    """The A1 (2 OCPU / 12 GB, 50 GB boot, a data volume) and the Micro (50 GB boot)."""
    return [instance("app", 2, 12), volume("data", data_gb), micro()]


def replica_services(
    postgres_mb: int = 448,
    postgres_cpus: str = "0.25",
    platform: str = "linux/amd64",
    image_platform: str = "linux/amd64",
) -> list[Any]:
    """The Micro's own provider, images and containers, as the program places them there."""
    provider = docker_provider("replica-docker", "ssh://ubuntu@198.51.100.11")
    pg = remote_image("replica-postgres", PG_IMAGE, image_platform, provider=provider)
    exporter = remote_image(
        "replica-exporter",
        "prom/node-exporter:v1.8.2@sha256:" + "e" * 64,
        "linux/amd64",
        provider=provider,
    )
    return [
        provider,
        pg,
        exporter,
        container(
            "postgres-replica",
            "replica",
            postgres_cpus,
            postgres_mb,
            provider=provider,
            remote=pg,
            platform=platform,
        ),
        container(
            "replica-node-exporter",
            "replica",
            "0.1",
            64,
            provider=provider,
            remote=exporter,
            platform="linux/amd64",
        ),
    ]


# --- a1-allowance: instances -------------------------------------------------------------


def test_the_a1_and_a_micro_pass_every_policy() -> None:
    stack = [*two_hosts(), *replica_services()]
    assert analyze_stack(analyzer(), stack) == []
    for registration in stack:
        assert analyze(analyzer(), registration) == [], registration.name


def test_a_micro_without_shape_config_leaves_the_a1_totals_alone() -> None:
    stack = [instance("app", 3, 12), micro(), micro("second")]
    found = only(analyze_stack(analyzer(), stack), "a1-allowance")
    assert "A1 instances use 3 OCPU / 12 GB in total ('app' 3 OCPU / 12 GB)" in found.message
    assert "replica" not in found.message and "shapeConfig" not in found.message


def test_at_most_two_micros_beside_the_a1() -> None:
    assert analyze_stack(analyzer(), [instance("app"), micro(), micro("second")]) == []
    stack = [instance("app"), micro(), micro("second"), micro("third")]
    found = only(analyze_stack(analyzer(), stack), "a1-allowance")
    assert "3 VM.Standard.E2.1.Micro instances" in found.message
    assert "the 2 allowed (maxMicroInstances)" in found.message


def test_at_most_four_always_free_instances_in_all() -> None:
    # Three A1s pass once maxA1Instances allows them, but not beside two Micros: five in all.
    config = {"a1-allowance": {"maxA1Instances": 4}}
    a1s = [instance(f"a1-{n}", 0.5, 3) for n in range(3)]
    assert analyze_stack(analyzer(config), [*a1s, micro()]) == []
    found = only(analyze_stack(analyzer(config), [*a1s, micro(), micro("second")]), "a1-allowance")
    assert "5 Always Free instances" in found.message
    assert "the 4 allowed (maxAlwaysFreeInstances)" in found.message


def test_the_4x24_profile_config_still_passes_its_four_a1s_and_two_micros() -> None:
    config = {
        "a1-allowance": {
            "maxA1Ocpus": 4,
            "maxA1MemoryGb": 24,
            "maxA1Instances": 4,
            "maxAlwaysFreeInstances": 6,
        }
    }
    stack = [*(instance(f"a1-{n}", 1, 6) for n in range(4)), micro(), micro("second")]
    assert of_policy(analyze_stack(analyzer(config), stack), "a1-allowance") == []


# --- block-storage-allowance: every boot volume and data volume ----------------------------


def test_two_boot_volumes_and_the_data_volume_fit_200_gb() -> None:
    assert of_policy(analyze_stack(analyzer(), two_hosts("100")), "block-storage-allowance") == []


def test_the_micros_boot_volume_counts_against_the_200_gb() -> None:
    found = only(analyze_stack(analyzer(), two_hosts("101")), "block-storage-allowance")
    assert "total 201 GB" in found.message and "by 1 GB" in found.message
    assert "boot of 'replica' 50 GB" in found.message


def test_a_micro_without_a_boot_size_counts_as_50_gb() -> None:
    stack = [instance("app"), volume("data", "100"), micro(boot_gb=None), micro("b", None)]
    found = only(analyze_stack(analyzer(), stack), "block-storage-allowance")
    assert "total 250 GB" in found.message


# --- host budgets: the Micro's containers against the Micro ------------------------------


def test_the_micro_offers_1_gb_less_its_reserve() -> None:
    stack = [*two_hosts(), *replica_services(postgres_mb=449)]
    host = stack[2]
    found = only(analyze_stack(analyzer(), stack), "host-memory-budget")
    assert found.urn == host.urn
    for part in (
        "Host 'replica'",
        "sum to 513 MB",
        "512 MB allowed",
        "1,024 MB instance memory - 512 MB reserved for the OS and Docker (microReservedMemoryMb)",
        "postgres-replica 449 MB",
    ):
        assert part in found.message


def test_the_micro_reserve_is_configurable_apart_from_the_a1s() -> None:
    stack = [*two_hosts(), *replica_services(postgres_mb=576)]
    config = {"host-memory-budget": {"microReservedMemoryMb": 384}}
    assert analyze_stack(analyzer(config), stack) == []
    a1_full = [container(f"a1-{n}", "app", "0.5", 2688) for n in range(4)]  # 10,752 MB
    assert analyze_stack(analyzer(), [*two_hosts(), *replica_services(), *a1_full]) == []
    found = only(
        analyze_stack(analyzer(), [*two_hosts(), *replica_services(), *a1_full[:3], *a1_full]),
        "host-memory-budget",
    )
    assert "Host 'app'" in found.message and "(hostReservedMemoryMb)" in found.message


def test_the_micro_offers_its_one_ocpu_times_the_overcommit() -> None:
    assert analyze_stack(analyzer(), [*two_hosts(), *replica_services(postgres_cpus="1.4")]) == []
    stack = [*two_hosts(), *replica_services(postgres_cpus="1.45")]
    found = only(analyze_stack(analyzer(), stack), "host-cpu-budget")
    assert "Host 'replica'" in found.message and "sum to 1.55" in found.message
    assert "1.5 allowed (1 OCPU x 1.5 (maxCpuOvercommit))" in found.message


# --- image-platforms: per host --------------------------------------------------------------


def test_an_arm64_container_on_the_micro_fails() -> None:
    stack = [*two_hosts(), *replica_services(platform="linux/arm64")]
    found = only(analyze_stack(analyzer(), stack), "image-platforms")
    assert found.urn == stack[6].urn
    assert "Container 'postgres-replica' uses platform linux/arm64" in found.message
    assert "host 'replica' is a VM.Standard.E2.1.Micro and runs linux/amd64" in found.message


def test_an_amd64_container_on_the_a1_fails() -> None:
    stack = [*two_hosts(), container("litellm", "app", platform="linux/amd64")]
    found = only(analyze_stack(analyzer(), stack), "image-platforms")
    assert "host 'app' is a VM.Standard.A1.Flex and runs linux/arm64" in found.message
    fine = [*two_hosts(), container("litellm", "app", platform="linux/arm64")]
    assert analyze_stack(analyzer(), fine) == []


def test_an_arm64_image_run_on_the_micro_fails() -> None:
    stack = [*two_hosts(), *replica_services(image_platform="linux/arm64")]
    found = only(analyze_stack(analyzer(), stack), "image-platforms")
    assert found.urn == stack[4].urn
    assert "Image 'replica-postgres' uses platform linux/arm64" in found.message
    assert "'replica' (VM.Standard.E2.1.Micro: linux/amd64)" in found.message


def test_an_image_is_placed_by_its_provider_when_no_container_runs_it() -> None:
    provider = docker_provider("replica-docker")
    placed = container("node-exporter", "replica", "0.1", 64, provider=provider)
    spare = remote_image("spare", "redis:7.2.4-alpine", "linux/arm64", provider=provider)
    found = only(
        analyze_stack(analyzer(), [*two_hosts(), provider, placed, spare]), "image-platforms"
    )
    assert found.urn == spare.urn and "'replica' (VM.Standard.E2.1.Micro" in found.message


def test_an_image_is_placed_by_the_containers_that_run_it() -> None:
    image = remote_image("exporter", "prom/node-exporter:v1.8.2", "linux/arm64")
    runs = container("node-exporter", "replica", "0.1", 64, remote=image)
    found = only(analyze_stack(analyzer(), [*two_hosts(), image, runs]), "image-platforms")
    assert found.urn == image.urn and "'replica' (VM.Standard.E2.1.Micro" in found.message


@pytest.mark.parametrize(("platform", "fails"), [("linux/arm64", False), ("linux/386", True)])
def test_an_image_of_no_host_must_be_a_platform_of_the_stacks_hosts(
    platform: str, fails: bool
) -> None:
    loose = remote_image("loose", "redis:7.2.4-alpine", platform)
    found = of_policy(analyze_stack(analyzer(), [*two_hosts(), loose]), "image-platforms")
    assert bool(found) is fails
    only_micro = of_policy(
        analyze_stack(analyzer(), [micro(), remote_image("loose", "redis:7.2.4-alpine")]),
        "image-platforms",
    )
    assert "the stack's hosts run linux/amd64" in only_micro[0].message


def test_an_image_without_a_platform_fails() -> None:
    loose = remote_image("loose", "redis:7.2.4-alpine", None)
    found = only(analyze_stack(analyzer(), [*two_hosts(), loose]), "image-platforms")
    assert "unset (the daemon decides)" in found.message


# --- postgres-bind-address ------------------------------------------------------------------


def _postgres(ip: str | None, **placed: Any) -> list[Any]:
    port: dict[str, Any] = {"internal": 5432, "external": 5432}
    if ip is not None:
        port["ip"] = ip
    image = remote_image("postgres-image", PG_IMAGE)
    return [image, container("postgres", "app", remote=image, ports=[port], **placed)]


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "", None])
def test_postgres_on_every_interface_fails_even_when_the_port_is_public(ip: str | None) -> None:
    config = {"no-public-ingress": {"publicPorts": [5432]}}
    stack = [*two_hosts(), *_postgres(ip)]
    found = only(analyze_stack(analyzer(config), stack), "postgres-bind-address")
    assert found.urn == stack[-1].urn
    assert f"runs {PG_IMAGE} and publishes port 5,432" in found.message
    assert "on every interface" in found.message


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.0.1.10"])
def test_postgres_on_one_address_passes(ip: str) -> None:
    assert analyze_stack(analyzer(), [*two_hosts(), *_postgres(ip)]) == []


@pytest.mark.parametrize(
    "image", ["postgres:15-alpine", "docker.io/library/postgres@sha256:" + "c" * 64]
)
def test_a_container_naming_a_postgres_image_is_judged_too(image: str) -> None:
    port = {"internal": 5432, "external": 5432, "ip": "0.0.0.0"}
    stack = [*two_hosts(), container("db", "app", image=image, ports=[port])]
    found = only(analyze_stack(analyzer(), stack), "postgres-bind-address")
    assert f"Container 'db' runs {image} and publishes port 5,432 (ip 0.0.0.0)" in found.message


def test_another_image_on_every_interface_is_left_to_no_public_ingress() -> None:
    config = {"no-public-ingress": {"publicPorts": [443]}}
    port = {"internal": 443, "external": 443}
    stack = [*two_hosts(), container("proxy", "app", image="caddy:2.8.4", ports=[port])]
    assert analyze_stack(analyzer(config), stack) == []


def test_an_image_that_cannot_be_told_on_every_interface_fails() -> None:
    port = {"internal": 5432, "external": 5432, "ip": "0.0.0.0"}
    config = {"no-public-ingress": {"publicPorts": [5432]}}
    stack = [*two_hosts(), container("db", "app", image=UNKNOWN, ports=[port])]
    found = only(analyze_stack(analyzer(config), stack), "postgres-bind-address")
    assert "whether it runs PostgreSQL cannot be told" in found.message


# --- protected-data: the Micro's boot volume holds the replica ------------------------------


def test_a_micro_that_follows_new_images_fails() -> None:
    follows = instance("replica", None, None, shape=MICRO, ignore_changes=[])
    found = only(analyze(analyzer(), follows), "protected-data")
    assert "Instance 'replica' (VM.Standard.E2.1.Micro)" in found.message
    assert analyze(analyzer(), micro()) == []
