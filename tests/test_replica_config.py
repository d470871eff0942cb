"""`ai-swarm:replica`: every bad value stops the program, naming its key and what is allowed."""

from __future__ import annotations

import ipaddress
import json

import pytest

from components.config import ConfigError
from components.config.replica import ReplicaSettings
from dryrun.engine import ProgramError, run_program

ON = {"enabled": True}


def _refused(overrides: dict[str, str]) -> ConfigError:
    with pytest.raises(ProgramError) as failure:
        run_program(overrides=overrides)
    error = failure.value.cause
    assert isinstance(error, ConfigError)
    assert failure.value.registrations == ()
    return error


def _replica(value: object) -> dict[str, str]:
    """The replica object, with a data volume that fits beside the Micro's boot volume."""
    return {"replica": json.dumps(value), "dataVolumeGb": "100"}


# (the replica object, the key the error names, the value shown, what is allowed)
BAD_REPLICAS: list[tuple[object, str, str, str]] = [
    ("yes", "ai-swarm:replica", "'\"yes\"'", "an object with any of enabled, privateIp"),
    ({"enabled": "yes"}, "ai-swarm:replica.enabled", "'yes'", "true or false"),
    ({"enabled": True, "size": 2}, "ai-swarm:replica.size", "2", "one of enabled, privateIp"),
    # The A1 host's own address, OCI's reserved ones (network, gateway, broadcast), outside.
    ({**ON, "privateIp": "10.0.1.10"}, "ai-swarm:replica.privateIp", "'10.0.1.10'", "A1 host's"),
    ({**ON, "privateIp": "10.0.1.0"}, "ai-swarm:replica.privateIp", "'10.0.1.0'", "from 10.0.1.2"),
    ({**ON, "privateIp": "10.0.1.1"}, "ai-swarm:replica.privateIp", "'10.0.1.1'", "10.0.1.254"),
    ({**ON, "privateIp": "10.0.1.255"}, "ai-swarm:replica.privateIp", "'10.0.1.255'", "10.0.1.2"),
    ({**ON, "privateIp": "10.0.2.20"}, "ai-swarm:replica.privateIp", "'10.0.2.20'", "10.0.1.0/24"),
    ({**ON, "privateIp": "micro"}, "ai-swarm:replica.privateIp", "'micro'", "an IPv4 address"),
    ({**ON, "privateIp": 20}, "ai-swarm:replica.privateIp", "20", "an IPv4 address"),
    # Wider than /28, host bits set, inside the VCN, IPv6, not a list, not a string.
    (
        {**ON, "externalCidrs": ["198.51.100.0/24"]},
        "ai-swarm:replica.externalCidrs[0]",
        "'198.51.100.0/24'",
        "each /28 or narrower",
    ),
    (
        {**ON, "externalCidrs": ["198.51.100.7/32", "198.51.100.7/28"]},
        "ai-swarm:replica.externalCidrs[1]",
        "'198.51.100.7/28'",
        "no host bits set",
    ),
    (
        {**ON, "externalCidrs": ["10.0.7.0/28"]},
        "ai-swarm:replica.externalCidrs[0]",
        "'10.0.7.0/28'",
        "outside vcnCidr 10.0.0.0/16",
    ),
    (
        {**ON, "externalCidrs": ["2001:db8::1/128"]},
        "ai-swarm:replica.externalCidrs[0]",
        "'2001:db8::1/128'",
        "IPv4 CIDRs",
    ),
    (
        {**ON, "externalCidrs": "198.51.100.7/32"},
        "ai-swarm:replica.externalCidrs",
        "'198.51.100.7/32'",
        "a list of IPv4 CIDRs",
    ),
    ({**ON, "externalCidrs": [7]}, "ai-swarm:replica.externalCidrs[0]", "7", "a list of IPv4"),
    # A setting that would do nothing without the replica.
    (
        {"externalCidrs": ["198.51.100.7/32"]},
        "ai-swarm:replica.externalCidrs",
        "['198.51.100.7/32']",
        "unset while ai-swarm:replica.enabled is false",
    ),
    (
        {"enabled": False, "privateIp": "10.0.1.20"},
        "ai-swarm:replica.privateIp",
        "'10.0.1.20'",
        "unset while ai-swarm:replica.enabled is false",
    ),
]


@pytest.mark.parametrize(
    ("value", "named", "shown", "allowed"), BAD_REPLICAS, ids=[str(c[0]) for c in BAD_REPLICAS]
)
def test_a_bad_replica_setting_is_refused_before_any_resource(
    value: object, named: str, shown: str, allowed: str
) -> None:
    error = _refused(_replica(value))
    assert error.key == named
    message = str(error)
    assert message.startswith(f"config {named}: {shown} is not allowed; ")
    assert allowed in message


def test_a_smaller_subnet_bounds_the_address_and_an_address_in_it_is_taken() -> None:
    overrides = {
        **_replica({**ON, "privateIp": "10.0.1.15"}),
        "subnetCidr": "10.0.1.0/28",
    }
    assert "from 10.0.1.2 to 10.0.1.14" in str(_refused(overrides))


def test_the_default_data_volume_does_not_fit_beside_the_replica() -> None:
    error = _refused({"replica": json.dumps(ON)})
    assert error.key == "ai-swarm:dataVolumeGb"
    message = str(error)
    assert message.startswith("config ai-swarm:dataVolumeGb: 150 is not allowed; at most 100: ")
    assert "boot volume (50 GB) + its data volume (150 GB) + the replica's boot volume (50 GB)" in (
        message
    )
    assert "= 250 GB" in message
    assert "cannot shrink" in message
    assert "docs/replica.md" in message


def test_a_large_boot_volume_is_named_when_no_data_volume_would_fit() -> None:
    error = _refused({"replica": json.dumps(ON), "bootVolumeGb": "110", "dataVolumeGb": "50"})
    assert error.key == "ai-swarm:bootVolumeGb"
    assert "at most 100 (with a data volume of 50 GB)" in str(error)
    assert "= 210 GB" in str(error)


def test_without_the_replica_the_data_volume_may_be_larger() -> None:
    run = run_program(overrides={"replica": json.dumps({"enabled": False}), "dataVolumeGb": "150"})
    assert run.one("oci:Core/volume:Volume").inputs["sizeInGbs"] == "150"


def test_peer_networks_are_the_micro_and_the_external_cidrs_only_when_enabled() -> None:
    micro = ipaddress.IPv4Address("10.0.1.11")
    railway = ipaddress.IPv4Network("198.51.100.7/32")
    on = ReplicaSettings(enabled=True, private_ip=micro, external_cidrs=(railway,))
    off = ReplicaSettings(enabled=False, private_ip=micro, external_cidrs=(railway,))
    assert on.peer_networks == (ipaddress.IPv4Network("10.0.1.11/32"), railway)
    assert off.peer_networks == ()
