"""A Pulumi program with two hosts: the stack's A1 host and a hypothetical x86 Micro.

No config key adds a second host yet: this composes one through the component API, as a
configured host will be, for `tests/test_hosts.py` (which runs it as a project's `__main__.py`).
"""

import ipaddress
from dataclasses import replace

from components.config import load_config
from components.host import Host, HostArgs
from components.services.placement import place_services
from components.sizing import HostSize, Shape

MICRO = Shape("VM.Standard.E2.1.Micro", platform="linux/amd64")

config = load_config(lambda _tenancy: ["AD-1"])
[a1] = config.hosts
micro = replace(
    a1,
    key="micro",
    name="swarm-micro",
    shape=MICRO,
    size=HostSize(ocpus=1, memory_gb=1),
    private_ip=ipaddress.IPv4Address("10.0.1.20"),
    services=("postgres", "nodeExporter"),
    resource_prefix="micro-",
    former_key=None,
)
for spec in (a1, micro):
    host = Host(
        spec.key,
        HostArgs(
            spec=spec,
            compartment_id=config.compartment_id,
            availability_domain=config.availability_domain,
            subnet_id="ocid1.subnet.oc1..dryrun",
            ssh_public_key=config.ssh_public_key,
            ssh_private_key=config.ssh_private_key,
        ),
    )
    place_services(config, host)
