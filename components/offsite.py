"""Off-site copies of the nightly `pg_dump` files, in Object Storage, written by the host alone.

The dumps live on the data volume they protect; OCI's volume backups are weekly. Every dump is
copied to a private bucket after each nightly run, by the instance itself with instance-principal
authentication: no credential is stored on the host.

- The bucket keeps no versions and is replicated nowhere; a lifecycle rule deletes each object
  `offsiteDays` after it was written, and another aborts multipart uploads left uncommitted for a
  day (the host cannot abort its own: that takes OBJECT_DELETE).
- A dynamic group matches exactly the A1 instance's OCID; the IAM policy lets it create and
  inspect (list) objects in this bucket, nothing else: the host can add a dump but cannot read,
  overwrite or delete one, so a compromised host cannot destroy the off-site copies. A second
  statement lets the Object Storage service of the region delete the bucket's objects: OCI runs
  lifecycle rules as that service, and refuses a lifecycle policy it may not carry out.
- IAM lives in the tenancy and is written in its home region. The program's region is the home
  region anyway: Always Free A1 capacity is offered in the home region only.
- The uploader (components/offsite_upload.py) and its systemd unit are installed over SSH, like
  the dump timer: the cloud-config stays the same for every stack (a changed one would replace
  the instance). The unit is wanted by the dump service and ordered after it, so every dump run,
  the timer's or a manual one, is followed by an upload of whatever dumps are not yet off-site.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_oci as oci

from components.backups import DUMP_DIR, DUMP_UNIT, SYSTEMD_DIR
from components.config import OffsiteSettings
from components.host import DATA_ROOT, HOST_TAG
from components.host_config import HostFile, install_files_script

# Always Free: 20 GB of Object Storage (Standard, Infrequent Access and Archive together). Read
# as decimal gigabytes, the smaller reading, so the uploader never passes either.
FREE_OBJECT_STORAGE_BYTES = 20 * 10**9
OBJECT_PREFIX = "postgres/"
ENCRYPTED_SUFFIX = ".age"
# The only object permissions the host gets (OCI IAM, "Details for Object Storage"): PutObject
# and the multipart upload calls need OBJECT_CREATE, ListObjects needs OBJECT_INSPECT.
HOST_PERMISSIONS = ("OBJECT_CREATE", "OBJECT_INSPECT")
# Uncommitted multipart uploads hold storage until aborted.
ABORT_UNCOMMITTED_DAYS = 1

UPLOAD_UNIT = "ai-swarm-offsite-upload"
UPLOAD_SCRIPT_PATH = f"/usr/local/sbin/{UPLOAD_UNIT}"
ENV_FILE = "/etc/ai-swarm/offsite.env"
# Encrypted copies are written here before they are sent: root's, on the data volume.
STAGING_DIR = f"{DATA_ROOT}/backups/offsite-staging"
# The OCI CLI, pinned, in a virtual environment of its own (oracle/oci-cli, setup.py pins its
# own `oci` SDK exactly). `oci os object put --force` sends no HeadObject first (that needs
# OBJECT_READ, which the host does not have); an existing name would need OBJECT_OVERWRITE, which
# it does not have either (oci-cli 3.89.3, objectstorage_cli_extended.py `object_put`).
OCI_CLI_VERSION = "3.89.3"
OCI_CLI_VENV = "/opt/ai-swarm/oci-cli"
UNIT_PATH = f"{OCI_CLI_VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

UPLOAD_SCRIPT = (Path(__file__).with_name("offsite_upload.py")).read_text()

UPLOAD_SERVICE = f"""[Unit]
Description=ai-swarm: copy the pg_dump files in {DUMP_DIR} to Object Storage
After={DUMP_UNIT}.service network-online.target
Wants=network-online.target
RequiresMountsFor={DATA_ROOT}

[Service]
Type=oneshot
EnvironmentFile={ENV_FILE}
Environment=PATH={UNIT_PATH}
ExecStart={UPLOAD_SCRIPT_PATH}
Nice=10
IOSchedulingClass=idle

[Install]
WantedBy={DUMP_UNIT}.service
"""


def bucket_name() -> str:
    """Fixed per stack: a bucket holding objects cannot be replaced, so no display setting
    (`hostName`) may rename it."""
    return f"{pulumi.get_project()}-{pulumi.get_stack()}-pg-dumps"


def env_file(namespace: str, bucket: str, settings: OffsiteSettings) -> str:
    """The uploader's settings, read by its unit (`EnvironmentFile=`)."""
    lines = [
        f"OFFSITE_NAMESPACE={namespace}",
        f"OFFSITE_BUCKET={bucket}",
        f"OFFSITE_PREFIX={OBJECT_PREFIX}",
        f"OFFSITE_DAYS={settings.days}",
        f"OFFSITE_LIMIT_BYTES={FREE_OBJECT_STORAGE_BYTES}",
        f"OFFSITE_DUMP_DIR={DUMP_DIR}",
        f"OFFSITE_STAGING_DIR={STAGING_DIR}",
        f"OFFSITE_AGE_RECIPIENT={settings.age_recipient or ''}",
    ]
    return "\n".join(lines) + "\n"


def upload_files(namespace: str, bucket: str, settings: OffsiteSettings) -> tuple[HostFile, ...]:
    return (
        HostFile(UPLOAD_SCRIPT_PATH, UPLOAD_SCRIPT, "0755"),
        HostFile(ENV_FILE, env_file(namespace, bucket, settings), "0644"),
        HostFile(f"{SYSTEMD_DIR}/{UPLOAD_UNIT}.service", UPLOAD_SERVICE),
    )


def render_install_script(files: tuple[HostFile, ...]) -> str:
    """Install `age`, python3-venv and the pinned OCI CLI (once per version), write `files`,
    and enable the upload unit under the dump service. Idempotent."""
    cli = f"{OCI_CLI_VENV}/bin/oci"
    return install_files_script(
        files,
        before=[
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "
            "install -y --no-install-recommends age python3-venv",
            f'if [ "$({cli} --version 2>/dev/null)" != "{OCI_CLI_VERSION}" ]; then',
            f"  sudo rm -rf {OCI_CLI_VENV}",
            f"  sudo python3 -m venv {OCI_CLI_VENV}",
            f"  sudo {OCI_CLI_VENV}/bin/pip install --quiet oci-cli=={OCI_CLI_VERSION}",
            "fi",
        ],
        then=["sudo systemctl daemon-reload", f"sudo systemctl enable {UPLOAD_UNIT}.service"],
    )


def matching_rule(instance_id: str) -> str:
    """A dynamic group's rule matching this one instance and nothing else."""
    return f"ALL {{instance.id = '{instance_id}'}}"


def policy_location(compartment_id: str, tenancy_id: str) -> str:
    """Where a statement applies: the tenancy itself, or the compartment by OCID."""
    return "tenancy" if compartment_id == tenancy_id else f"compartment id {compartment_id}"


def host_statement(group: str, bucket: str, location: str) -> str:
    """The host's one grant: create and list objects in the bucket."""
    permissions = ", ".join(f"request.permission = '{p}'" for p in HOST_PERMISSIONS)
    return (
        f"Allow dynamic-group {group} to manage objects in {location} where all "
        f"{{target.bucket.name = '{bucket}', any {{{permissions}}}}}"
    )


def lifecycle_statement(region: str, bucket: str, location: str) -> str:
    """Object Storage runs lifecycle rules as its regional service principal."""
    return (
        f"Allow service objectstorage-{region} to manage object-family in {location} "
        f"where target.bucket.name = '{bucket}'"
    )


@dataclass(frozen=True)
class OffsiteBackupsArgs:
    compartment_id: str
    tenancy_id: str
    region: str
    host_key: str  # the host's `ai-swarm-host` tag
    instance_id: pulumi.Input[str]
    settings: OffsiteSettings
    connection: command.remote.ConnectionArgs
    # The upload unit is wanted by the dump unit: installed once that is.
    after: pulumi.Resource


class OffsiteBackups(pulumi.ComponentResource):
    """The dumps' bucket, its lifecycle, the host's narrow IAM grant and the host's uploader."""

    def __init__(
        self, name: str, args: OffsiteBackupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("ai-swarm:oci:OffsiteBackups", name, None, opts)
        namespace = oci.objectstorage.get_namespace_output(
            compartment_id=args.compartment_id, opts=pulumi.InvokeOutputOptions(parent=self)
        ).namespace
        location = policy_location(args.compartment_id, args.tenancy_id)
        bucket = oci.objectstorage.Bucket(
            f"{name}-bucket",
            compartment_id=args.compartment_id,
            namespace=namespace,
            name=bucket_name(),
            access_type="NoPublicAccess",
            versioning="Disabled",
            storage_tier="Standard",
            freeform_tags={HOST_TAG: args.host_key},
            opts=pulumi.ResourceOptions(parent=self),
        )
        service_policy = oci.identity.Policy(
            f"{name}-lifecycle-policy",
            compartment_id=args.tenancy_id,
            name=f"{bucket_name()}-lifecycle",
            description="ai-swarm: Object Storage may delete the pg_dump bucket's old objects",
            statements=[bucket.name.apply(lambda b: lifecycle_statement(args.region, b, location))],
            opts=pulumi.ResourceOptions(parent=self),
        )
        lifecycle = oci.objectstorage.ObjectLifecyclePolicy(
            f"{name}-lifecycle",
            namespace=namespace,
            bucket=bucket.name,
            rules=[
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name=f"delete-after-{args.settings.days}-days",
                    action="DELETE",
                    target="objects",
                    is_enabled=True,
                    time_amount=str(args.settings.days),
                    time_unit="DAYS",
                ),
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name="abort-uncommitted-uploads",
                    action="ABORT",
                    target="multipart-uploads",
                    is_enabled=True,
                    time_amount=str(ABORT_UNCOMMITTED_DAYS),
                    time_unit="DAYS",
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[service_policy]),
        )
        group = oci.identity.DynamicGroup(
            f"{name}-host-group",
            compartment_id=args.tenancy_id,
            name=f"{bucket_name()}-writer",
            description="ai-swarm: the A1 host, which writes the pg_dump files off-site",
            matching_rule=pulumi.Output.from_input(args.instance_id).apply(matching_rule),
            opts=pulumi.ResourceOptions(parent=self),
        )
        host_policy = oci.identity.Policy(
            f"{name}-host-policy",
            compartment_id=args.tenancy_id,
            name=f"{bucket_name()}-writer",
            description="ai-swarm: the host may add pg_dump files, never read or remove them",
            statements=[
                pulumi.Output.all(group.name, bucket.name).apply(
                    lambda names: host_statement(names[0], names[1], location)
                )
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        install = pulumi.Output.all(namespace, bucket.name).apply(
            lambda values: render_install_script(upload_files(values[0], values[1], args.settings))
        )
        uploader = command.remote.Command(
            f"{name}-uploader",
            connection=args.connection,
            create=install,
            update=install,
            triggers=[
                args.instance_id,
                install.apply(lambda text: hashlib.sha256(text.encode()).hexdigest()),
            ],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.after, host_policy, lifecycle]
            ),
        )
        self.bucket_name = bucket.name
        self.namespace = namespace
        self.register_outputs(
            {
                "bucket": bucket.name,
                "namespace": namespace,
                "lifecyclePolicy": lifecycle.id,
                "dynamicGroup": group.name,
                "hostPolicy": host_policy.id,
                "uploader": uploader.id,
            }
        )
