"""ai-swarm: a private AI stack on Oracle Cloud Always Free hosts: an Ampere A1 host and, with
`ai-swarm:replica.enabled`, an x86 E2.1.Micro holding a replica of its databases."""

import pulumi
import pulumi_oci as oci

from components.backups import DUMP_DIR, Backups, BackupsArgs
from components.config import load_config
from components.host import Host, HostArgs
from components.host_config import HostSettings, HostSettingsArgs
from components.network import Network, NetworkArgs
from components.offsite import OffsiteBackups, OffsiteBackupsArgs
from components.postgres_replication import PostgresReplication, PostgresReplicationArgs
from components.services import postgres as postgres_service
from components.services.placement import Placement, place_services


def _availability_domain_names(compartment_id: str) -> list[str]:
    found = oci.identity.get_availability_domains(compartment_id=compartment_id)
    return [domain.name for domain in found.availability_domains]


config = load_config(_availability_domain_names)

network = Network(
    "swarm",
    NetworkArgs(
        compartment_id=config.compartment_id,
        vcn_cidr=config.vcn_cidr,
        subnet_cidr=config.subnet_cidr,
        admin_cidrs=config.admin_cidrs,
        admin_ports=config.admin_ports,
        postgres_peers=config.replica.peer_networks,
        postgres_port=postgres_service.PORT,
    ),
)
placed: list[tuple[Host, Placement]] = []
# With the replica: its TLS and roles, made once the A1 host's addresses are known.
replication: PostgresReplication | None = None
for spec in config.hosts:
    new_host = Host(
        spec.key,
        HostArgs(
            spec=spec,
            compartment_id=config.compartment_id,
            availability_domain=config.availability_domain,
            subnet_id=network.subnet_id,
            ssh_public_key=config.ssh_public_key,
            ssh_private_key=config.ssh_private_key,
        ),
    )
    host_settings = HostSettings(
        f"{spec.key}-settings",
        HostSettingsArgs(
            connection=new_host.connection,
            instance_id=new_host.instance_id,
            ready=new_host.ready,
            admin_cidrs=config.admin_cidrs,
            admin_ports=spec.admin_ports,
            postgres_peers=spec.postgres_peers,
            postgres_port=postgres_service.PORT,
        ),
    )
    if spec.postgres_peers:
        replication = PostgresReplication(
            "postgres-replication",
            PostgresReplicationArgs(config.replica, new_host.private_ip, new_host.public_ip),
        )
    placed.append(
        (
            new_host,
            place_services(
                config,
                new_host,
                after=[host_settings.sshd],
                replication=replication.link if replication else None,
            ),
        )
    )
# The first host holds the stack's data and is the one the outputs name.
host, placement = placed[0]
replica_host = placed[1][0] if len(placed) > 1 else None
if replication is not None:
    replication.keep(placed)
if host.data_volume_id is None:
    raise pulumi.RunError(f"the first host, {host.host_key}, must have a data volume")

pulumi.export("profile", config.profile.name)
pulumi.export("publicIp", host.public_ip)
pulumi.export("sshCommand", host.ssh_command)
pulumi.export("dockerHost", host.docker_host)
pulumi.export("instanceId", host.instance_id)

pulumi.export("uiTunnel", placement.tunnel_command(host.public_ip, host.instance_id))
pulumi.export("litellmMasterKey", placement.litellm_master_key)

postgres = placement.services.get("postgres")
backups = Backups(
    "backups",
    BackupsArgs(
        compartment_id=config.compartment_id,
        host_name=config.host_name,
        host_key=host.host_key,
        data_volume_id=host.data_volume_id,
        schedule=config.backups,
        instance_id=host.instance_id,
        connection=host.connection,
        postgres=postgres.containers[0] if postgres is not None else None,
    ),
)
offsite = None
if postgres is not None and config.backups.offsite.enabled:
    offsite = OffsiteBackups(
        "offsite",
        OffsiteBackupsArgs(
            compartment_id=config.compartment_id,
            tenancy_id=config.tenancy_id,
            region=config.region,
            host_key=host.host_key,
            instance_id=host.instance_id,
            settings=config.backups.offsite,
            connection=host.connection,
            after=backups,
        ),
    )
pulumi.export("dataVolumeId", host.data_volume_id)
pulumi.export("volumeBackups", config.backups.summary)
pulumi.export("pgDumps", DUMP_DIR if postgres is not None else None)
pulumi.export("offsiteBucket", offsite.bucket_name if offsite else None)
pulumi.export("offsiteNamespace", offsite.namespace if offsite else None)
pulumi.export(
    "replica",
    None
    if replica_host is None
    else {
        "instanceId": replica_host.instance_id,
        "publicIp": replica_host.public_ip,
        "privateIp": replica_host.private_ip,
        "sshCommand": replica_host.ssh_command,
    },
)
pulumi.export("postgresCaCert", replication.ca_cert_pem if replication else None)
pulumi.export("postgresPeer", replication.peer_output() if replication else None)
pulumi.export("postgresPeerPassword", replication.peer_password if replication else None)
