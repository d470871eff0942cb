"""A Docker host of a given shape: instance, protected state volume, reserved IP, readiness gate.

A host without a data volume (the replica's E2.1.Micro) keeps its data on its boot volume and
reaches the internet through an ephemeral public IP instead of a reserved one."""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_oci as oci
import pulumi_tls as tls

from components.cloud_init import (
    BOOT_DATA_DIR,
    DATA_DEVICE,
    DATA_LABEL,
    DATA_ROOT,
    render_user_data,
)
from components.sizing import HostSpec
from components.ssh import SSH_USER, SshHostKey, known_hosts_options

__all__ = [
    "DATA_ROOT",
    "HOST_TAG",
    "Host",
    "HostArgs",
]

HOST_TAG = "ai-swarm-host"
# Seconds the readiness gate waits for cloud-init, whose first boot may wait up to 15 minutes
# for the data volume, about 10 for egress and a few for apt's retries; the Command's own
# timeout is a little longer.
CLOUD_INIT_WAIT_SECONDS = 1800


# /mnt/data must be the data volume itself: a mount of anything else (or none: the boot disk's
# empty directory) would let the services start on a blank state. The volume is known by the
# label its filesystem was made with; a write shows the mount is not read-only (ext4 remounts
# read-only after an error).
_VOLUME_CHECK = f"""source=$(findmnt --noheadings --output SOURCE --mountpoint {DATA_ROOT}) || {{
  echo "{DATA_ROOT} is not mounted" >&2
  exit 1
}}
label=$(sudo blkid -p -s LABEL -o value "$source") || label=""
if [ "$label" != "{DATA_LABEL}" ]; then
  echo "{DATA_ROOT} is $source (label '$label'), not the data volume {DATA_LABEL}" >&2
  exit 1
fi
written=$(sudo mktemp -p {DATA_ROOT} .ai-swarm-ready.XXXXXX) || {{
  echo "{DATA_ROOT} is not writable" >&2
  exit 1
}}
sudo rm -f -- "$written"
"""

# A host without a data volume: /mnt/data must be its boot volume's data directory, bound
# there (on the root filesystem, so not an empty mount point), writable, and swap must be on.
_BOOT_DATA_CHECK = f"""mountpoint -q {DATA_ROOT} || {{
  echo "{DATA_ROOT} is not mounted ({BOOT_DATA_DIR} bound there)" >&2
  exit 1
}}
if [ "$(stat -c %d {DATA_ROOT})" != "$(stat -c %d /)" ]; then
  echo "{DATA_ROOT} is not on the boot volume" >&2
  exit 1
fi
written=$(sudo mktemp -p {DATA_ROOT} .ai-swarm-ready.XXXXXX) || {{
  echo "{DATA_ROOT} is not writable" >&2
  exit 1
}}
sudo rm -f -- "$written"
if [ "$(swapon --noheadings --show=NAME | wc -l)" -eq 0 ]; then
  echo "no swap is on" >&2
  exit 1
fi
"""


def _ready_script(data_check: str) -> str:
    """Wait for cloud-init, check the host's data directory, and ask Docker."""
    # `cloud-init status --wait` exits 2 when boot finished with recoverable errors
    # ("degraded").
    return f"""set -u
rc=0
sudo timeout {CLOUD_INIT_WAIT_SECONDS} cloud-init status --wait >/dev/null || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
  echo "cloud-init did not finish (exit $rc)" >&2
  sudo cloud-init status --long >&2
  exit 1
fi
{data_check}sg docker -c 'docker info --format "docker {{{{.ServerVersion}}}} ready"'
"""


_READY_SCRIPT = _ready_script(_VOLUME_CHECK)
_BOOT_DATA_READY_SCRIPT = _ready_script(_BOOT_DATA_CHECK)


@dataclass(frozen=True)
class HostArgs:
    spec: HostSpec  # shape, size, volumes, address; `spec.former_key` is aliased when set
    compartment_id: str
    availability_domain: str
    subnet_id: pulumi.Input[str]
    ssh_public_key: str
    ssh_private_key: pulumi.Output[str]


class Host(pulumi.ComponentResource):
    """One instance of its spec's shape running Docker, with its state on a separate volume.

    The component and its children have fixed names: `hostName` and the other display settings
    are updated in place on the resources (display names, hostname label, tags), never renamed.
    The cloud-config is the same for every stack, so no setting replaces the instance; settings
    that change are applied over SSH (`components/host_config.py`). When the instance is
    replaced all the same (a new availability domain or SSH public key, fixed at launch, or
    `pulumi up --replace`), the
    host holds no state (services keep theirs on the protected data volume, which the new
    instance mounts again) and the reserved IP moves to the new instance. It is deleted before
    its replacement is created, since the allowance has room for only one host of this size.
    A newer Ubuntu image is ignored: the running host is never re-imaged by an `up`.
    """

    spec: HostSpec
    host_name: str
    # What containers name to be placed here (the `ai-swarm-host` tag): the component's own
    # name, which a `hostName` change never touches, so no container is replaced by a rename.
    host_key: str
    instance_id: pulumi.Output[str]
    # None on a host without a data volume (its data is on the boot volume).
    data_volume_id: pulumi.Output[str] | None
    connection: command.remote.ConnectionArgs
    public_ip: pulumi.Output[str]
    private_ip: str
    docker_host: pulumi.Output[str]
    ssh_command: pulumi.Output[str]
    ssh_host_public_key: pulumi.Output[str]
    ready: command.remote.Command

    def __init__(
        self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        spec = args.spec
        own = pulumi.ResourceOptions(aliases=_former_names(spec.former_key, name, ""))
        # The type token is part of every child's URN: it keeps the name it had when the only
        # host was an A1 (ARM) host, whatever the shape.
        super().__init__(
            "ai-swarm:oci:ArmHost", name, None, pulumi.ResourceOptions.merge(opts, own)
        )
        self._name = name
        self._former_name = spec.former_key
        self.spec = spec
        self.host_name = spec.name
        self.host_key = name

        # The host's SSH host key: cloud-init installs it at first boot and every remote command
        # pins it, so no session (each carries secrets on stdin) trusts whoever answers first.
        # It is part of the instance's launch inputs (the user data): protected on a host with
        # a data volume, so that it is never made again, which would replace the instance. A
        # host without one holds nothing its replacement cannot copy again, and must go
        # without a `pulumi state unprotect` when its setting is turned off.
        host_key = tls.PrivateKey(
            f"{name}-ssh-host-key",
            algorithm="ED25519",
            opts=self._child("-ssh-host-key", protect=spec.data_volume_gb is not None),
        )
        self.ssh_host_public_key = host_key.public_key_openssh
        instance = self._instance(name, args, host_key)
        self.instance_id = instance.id
        # What the readiness gate waits for, and what makes it run again.
        ready_after: list[pulumi.Resource] = []
        ready_triggers: list[pulumi.Input[str]] = [instance.id]
        if spec.data_volume_gb is None:
            # The data lives on the boot volume; the ephemeral public IP the instance is
            # launched with serves egress and admin SSH.
            self.data_volume_id = None
            self.public_ip = instance.public_ip
            ready_script = _BOOT_DATA_READY_SCRIPT
        else:
            attachment = self._data_volume(name, args, instance)
            ready_after.append(attachment)
            ready_triggers.append(attachment.id)
            reserved_ip = oci.core.PublicIp(
                f"{name}-ip",
                compartment_id=args.compartment_id,
                lifetime="RESERVED",
                display_name=f"{spec.name}-ip",
                private_ip_id=_primary_private_ip_id(args.compartment_id, instance),
                opts=self._child("-ip"),
            )
            self.public_ip = reserved_ip.ip_address
            ready_script = _READY_SCRIPT

        self.private_ip = str(spec.private_ip)
        self.docker_host = pulumi.Output.concat("ssh://", SSH_USER, "@", self.public_ip)
        self.ssh_command = pulumi.Output.all(self.instance_id, self.public_ip).apply(
            lambda found: shlex.join(
                ["ssh", *known_hosts_options(found[0]), f"{SSH_USER}@{found[1]}"]
            )
        )
        self.connection = command.remote.ConnectionArgs(
            host=self.public_ip,
            user=SSH_USER,
            # pulumi-command checks it with x/crypto's `ssh.FixedHostKey` and offers the server
            # only this key's algorithm; without it, any host key is accepted.
            host_key=self.ssh_host_public_key,
            private_key=args.ssh_private_key,
            dial_error_limit=-1,
            per_dial_timeout=30,
        )
        self.ready = command.remote.Command(
            f"{name}-ready",
            connection=self.connection,
            create=ready_script,
            triggers=ready_triggers,
            opts=pulumi.ResourceOptions.merge(
                self._child("-ready"),
                pulumi.ResourceOptions(
                    depends_on=ready_after,
                    custom_timeouts=pulumi.CustomTimeouts(create="35m", update="35m"),
                ),
            ),
        )
        self.register_outputs(
            {
                "publicIp": self.public_ip,
                "privateIp": self.private_ip,
                "dockerHost": self.docker_host,
                "sshCommand": self.ssh_command,
            }
        )

    def _data_volume(
        self, name: str, args: HostArgs, instance: oci.core.Instance
    ) -> oci.core.VolumeAttachment:
        """The protected state volume, attached to the instance."""
        spec = args.spec
        volume = oci.core.Volume(
            f"{name}-data",
            compartment_id=args.compartment_id,
            availability_domain=args.availability_domain,
            display_name=f"{spec.name}-data",
            size_in_gbs=str(spec.data_volume_gb),
            freeform_tags={HOST_TAG: name},
            opts=pulumi.ResourceOptions.merge(
                self._child("-data", protect=True, retain_on_delete=True),
                # Made once the instance exists: a launch that fails for capacity leaves no
                # volume behind in that availability domain, so the next try may pick another
                # (a volume cannot move between domains, and this one is protected).
                pulumi.ResourceOptions(depends_on=[instance]),
            ),
        )
        self.data_volume_id = volume.id
        return oci.core.VolumeAttachment(
            f"{name}-data-attachment",
            attachment_type="paravirtualized",
            instance_id=instance.id,
            volume_id=volume.id,
            device=DATA_DEVICE,
            # Fixed, and its changes ignored: OCI cannot update an attachment, so any change of
            # its inputs replaces it, detaching the mounted volume from the running host
            # (dryrun/replacements.py). Stacks made when it was named `<hostName>-data` keep
            # that name.
            display_name=f"{name}-data",
            opts=pulumi.ResourceOptions.merge(
                self._child("-data-attachment"),
                pulumi.ResourceOptions(ignore_changes=["displayName"]),
            ),
        )

    def _child(
        self, suffix: str, protect: bool = False, retain_on_delete: bool = False
    ) -> pulumi.ResourceOptions:
        """Options of the child `<name><suffix>`, aliased to its name under the former name."""
        return pulumi.ResourceOptions(
            parent=self,
            protect=protect,
            retain_on_delete=retain_on_delete,
            aliases=_former_names(self._former_name, self._name, suffix),
        )

    def _instance(self, name: str, args: HostArgs, host_key: tls.PrivateKey) -> oci.core.Instance:
        spec = args.spec
        # A secret: it holds the host key's private half.
        plain_user_data = pulumi.Output.all(
            host_key.private_key_openssh, host_key.public_key_openssh
        ).apply(
            lambda halves: _user_data(
                SshHostKey(*halves), spec.data_volume_gb is not None, spec.shape.swap_mb
            )
        )
        user_data: pulumi.Output[str] = pulumi.Output.secret(plain_user_data)
        return oci.core.Instance(
            f"{name}-instance",
            compartment_id=args.compartment_id,
            availability_domain=args.availability_domain,
            display_name=spec.name,
            shape=spec.shape.name,
            # A fixed shape (the Micro) has its size and takes none.
            shape_config=None
            if spec.shape.fixed_size is not None
            else oci.core.InstanceShapeConfigArgs(
                ocpus=spec.size.ocpus, memory_in_gbs=spec.size.memory_gb
            ),
            source_details=oci.core.InstanceSourceDetailsArgs(
                source_type="image",
                source_id=_newest_image(args.compartment_id, spec),
                boot_volume_size_in_gbs=str(spec.boot_volume_gb),
            ),
            # `hostname_label` and `display_name` are "(Updatable)" (pulumi-oci's
            # InstanceCreateVnicDetailsArgs): a new `hostName` changes the VNIC in place.
            create_vnic_details=oci.core.InstanceCreateVnicDetailsArgs(
                subnet_id=args.subnet_id,
                # A host with a reserved IP gets it bound once it runs; one without has an
                # ephemeral address from its launch on (replaced with the instance).
                assign_public_ip="false" if spec.data_volume_gb is not None else "true",
                private_ip=str(spec.private_ip),
                hostname_label=spec.name,
                display_name=f"{spec.name}-vnic",
            ),
            metadata={
                "ssh_authorized_keys": args.ssh_public_key,
                "user_data": user_data,
            },
            freeform_tags={HOST_TAG: name},
            preserve_boot_volume=False,
            opts=pulumi.ResourceOptions.merge(
                self._child("-instance"),
                pulumi.ResourceOptions(
                    ignore_changes=["sourceDetails.sourceId"],
                    # Two A1 hosts of the default size would exceed the free allowance (2
                    # OCPUs, 12 GB in all), and a Micro's replacement would need its fixed
                    # private address while the old one holds it: the old instance must go
                    # before the new one can be made.
                    delete_before_replace=True,
                    custom_timeouts=pulumi.CustomTimeouts(create="30m"),
                ),
            ),
        )


def _user_data(host_key: SshHostKey, data_volume: bool, swap_mb: int | None) -> str:
    return base64.b64encode(render_user_data(host_key, data_volume, swap_mb).encode()).decode()


def _former_names(former: str | None, name: str, suffix: str) -> list[pulumi.Alias] | None:
    """The alias of `<name><suffix>` to `<former><suffix>` in the same parent, when renamed.

    A URN holds the parent's type, not its name, so a name alone identifies the old resource."""
    if former is None or former == name:
        return None
    return [pulumi.Alias(name=f"{former}{suffix}")]


def _newest_image(compartment_id: str, spec: HostSpec) -> pulumi.Output[str]:
    """The newest image of the spec's OS for its shape (and so for the shape's architecture)."""
    images = oci.core.get_images_output(
        compartment_id=compartment_id,
        operating_system=spec.image.operating_system,
        operating_system_version=spec.image.version,
        shape=spec.shape.name,
        sort_by="TIMECREATED",
        sort_order="DESC",
    )
    return images.images.apply(lambda found: _first_image_id(found, spec))


def _first_image_id(images: Sequence[oci.core.outputs.GetImagesImageResult], spec: HostSpec) -> str:
    if not images:
        wanted = f"{spec.image.operating_system} {spec.image.version}"
        raise pulumi.RunError(
            f"OCI lists no {wanted} image for {spec.shape.name} in this compartment"
        )
    return images[0].id


def _primary_private_ip_id(compartment_id: str, instance: oci.core.Instance) -> pulumi.Output[str]:
    attachments = oci.core.get_vnic_attachments_output(
        compartment_id=compartment_id, instance_id=instance.id
    )
    vnic_id = attachments.vnic_attachments.apply(lambda found: found[0].vnic_id)
    private_ips = oci.core.get_private_ips_output(vnic_id=vnic_id)
    return private_ips.private_ips.apply(_primary_id)


def _primary_id(private_ips: Sequence[oci.core.outputs.GetPrivateIpsPrivateIpResult]) -> str:
    """The VNIC's primary private IP: the reserved IP follows it across instance replacements."""
    primary = [ip.id for ip in private_ips if ip.is_primary]
    if len(primary) != 1:
        raise pulumi.RunError(f"the host's VNIC lists {len(primary)} primary private IPs, not 1")
    return primary[0]
