"""ai-swarm: a private AI stack on one Oracle Cloud Always Free Ampere A1 host."""

import pulumi
import pulumi_oci as oci

from components.backups import DUMP_DIR, Backups, BackupsArgs
from components.config import load_config
from components.host import ArmHost, ArmHostArgs
from components.host_config import HostSettings, HostSettingsArgs
from components.network import Network, NetworkArgs
from components.offsite import OffsiteBackups, OffsiteBackupsArgs
from components.services.placement import place_services


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
    ),
)
# Fixed names: `hostName` is a display setting. Stacks made when the host component was named
# after it keep their resources through the alias to that former name.
host = ArmHost(
    "host",
    ArmHostArgs(
        compartment_id=config.compartment_id,
        availability_domain=config.availability_domain,
        subnet_id=network.subnet_id,
        private_ip=str(config.host_private_ip),
        host_name=config.host_name,
        ocpus=config.host_size.ocpus,
        memory_gb=config.host_size.memory_gb,
        boot_volume_gb=config.boot_volume_gb,
        data_volume_gb=config.data_volume_gb,
        ssh_public_key=config.ssh_public_key,
        ssh_private_key=config.ssh_private_key,
        former_name=config.host_name,
    ),
)
host_settings = HostSettings(
    "host-settings",
    HostSettingsArgs(
        connection=host.connection,
        instance_id=host.instance_id,
        ready=host.ready,
        admin_cidrs=config.admin_cidrs,
        admin_ports=config.admin_ports,
    ),
)

pulumi.export("profile", config.profile.name)
pulumi.export("publicIp", host.public_ip)
pulumi.export("sshCommand", host.ssh_command)
pulumi.export("dockerHost", host.docker_host)
pulumi.export("instanceId", host.instance_id)

placement = place_services(config, host, after=[host_settings.sshd])
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
