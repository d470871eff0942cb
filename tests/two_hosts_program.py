"""A Pulumi program with two hosts: the stack's A1 host and an x86 Micro running Postgres.

It composes the second host through the component API, not through `ai-swarm:replica`, with a
data volume and Postgres on it, a layout the config does not offer: placement must hold for
any spec. `tests/test_hosts.py` runs it as a project's `__main__.py`.
"""

import ipaddress
from dataclasses import replace

from components.config import load_config
from components.host import Host, HostArgs
from components.services.placement import place_services
from components.sizing import E2_1_MICRO, MICRO_ALLOCATIONS, MICRO_SIZE, Shape

# The Micro's shape, but sized explicitly (shape_config), with a data volume.
MICRO = Shape(E2_1_MICRO.name, platform=E2_1_MICRO.platform)

config = load_config(lambda _tenancy: ["AD-1"])
[a1] = config.hosts
micro = replace(
    a1,
    key="micro",
    name="swarm-micro",
    shape=MICRO,
    size=MICRO_SIZE,
    private_ip=ipaddress.IPv4Address("10.0.1.20"),
    services=("postgres", "nodeExporter"),
    allocations={**MICRO_ALLOCATIONS, "postgres": MICRO_ALLOCATIONS["postgres-replica"]},
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
