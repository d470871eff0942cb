"""Which input changes replace a resource, for every resource type the program registers.

`FORCES_REPLACEMENT` is the one table: for each type, the input paths (as the Pulumi SDK sends
them: camelCase, dotted into objects, list indices left out) whose change makes the provider
plan a replacement instead of an update. Every other input changes in place. Each row cites the
provider's source at the version the pinned SDK bridges (requirements.txt):

- pulumi-oci 5.5.0 bridges oracle/terraform-provider-oci v8: the rows are the schema's
  `ForceNew: true` fields in internal/service/core/core_<resource>_resource.go, the same in
  v8.23.0 (commit 8016f415, pulumi/pulumi-oci's `upstream` submodule in July 2026) and in
  v8.28.0 (commit 8de3c48b, August 2026).
- pulumi-docker 5.2.0 bridges kreuzwerker/terraform-provider-docker v4.5.0 (commit 5074970c,
  the `upstream` submodule of pulumi/pulumi-docker v5.1.0 and later): `ForceNew: true` in
  internal/provider/resource_docker_<resource>.go.
- pulumi-random 4.21.4 bridges hashicorp/terraform-provider-random: the plugin-framework
  `RequiresReplace` plan modifiers in internal/provider/resource_<name>.go, the same at commit
  f8d869dc (pulumi/pulumi-random's go.mod, August 2026) and at v3.9.0.
- pulumi-command 1.2.1 is a native provider: provider/pkg/provider/common/inputs.go tags only
  `triggers` `provider:"replaceOnChanges"` (whatever its description says of `update`: there is
  no Diff of its own); remote/commandController.go's Update runs the `update` (or else the
  `create`) command again for any other change, a new `connection` included.

`plan(before, after)` compares two runs of the program under mocks as the engine would: a
changed input that the table (or the resource's own `replaceOnChanges`) lists replaces the
resource, `ignoreChanges` paths are left out, and a replaced resource's new ID reaches the
inputs that hold it, which may replace those resources in turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dryrun.engine import ProgramRun, Registration

_OCI = "oracle/terraform-provider-oci v8.23.0-v8.28.0 internal/service/core/"
_DOCKER = "kreuzwerker/terraform-provider-docker v4.5.0 internal/provider/"
_RANDOM = "hashicorp/terraform-provider-random f8d869dc internal/provider/"
_OCI_IDENTITY = "oracle/terraform-provider-oci internal/service/identity/"
_OCI_OBJECTS = "oracle/terraform-provider-oci internal/service/objectstorage/"
_TLS = "hashicorp/terraform-provider-tls internal/provider/"


@dataclass(frozen=True)
class Rule:
    """The inputs whose change replaces a resource of one type, and where that is written."""

    forces: tuple[str, ...]
    source: str


FORCES_REPLACEMENT: Mapping[str, Rule] = {
    # --- OCI ------------------------------------------------------------------------------
    # core_instance_resource.go: ForceNew fields, and CustomizeDiff's ForceNewIfChange on
    # `metadata` when its `ssh_authorized_keys` or `user_data` entry changes. `shape`,
    # `shape_config`, `compartment_id`, `display_name`, `freeform_tags`, the other `metadata`
    # entries, `source_details.boot_volume_size_in_gbs` and `create_vnic_details`'
    # `display_name` / `hostname_label` are updated in place (updateCoreInstance).
    "oci:Core/instance:Instance": Rule(
        (
            "availabilityDomain",
            "clusterPlacementGroupId",
            "computeClusterId",
            "hostnameLabel",
            "image",
            "instanceConfigurationId",
            "ipxeScript",
            "isPvEncryptionInTransitEnabled",
            "placementConstraintDetails",
            "preemptibleInstanceConfig",
            "subnetId",
            "createVnicDetails.assignIpv6ip",
            "createVnicDetails.assignPrivateDnsRecord",
            "createVnicDetails.ipv6addressIpv6subnetCidrPairDetails",
            "createVnicDetails.privateIp",
            "createVnicDetails.privateIpId",
            "createVnicDetails.securityAttributes",
            "createVnicDetails.subnetCidr",
            "createVnicDetails.subnetId",
            "createVnicDetails.vlanId",
            "launchOptions.firmware",
            "launchOptions.isConsistentVolumeNamingEnabled",
            "launchOptions.remoteDataVolumeType",
            "platformConfig.areVirtualInstructionsEnabled",
            "platformConfig.isAccessControlServiceEnabled",
            "platformConfig.isInputOutputMemoryManagementUnitEnabled",
            "platformConfig.isMeasuredBootEnabled",
            "platformConfig.isMemoryEncryptionEnabled",
            "platformConfig.isSecureBootEnabled",
            "platformConfig.isTrustedPlatformModuleEnabled",
            "platformConfig.numaNodesPerSocket",
            "platformConfig.percentageOfCoresEnabled",
            "sourceDetails.bootVolumeVpusPerGb",
            "sourceDetails.instanceSourceImageFilterDetails",
            "metadata.ssh_authorized_keys",
            "metadata.user_data",
        ),
        _OCI + "core_instance_resource.go",
    ),
    # `size_in_gbs` (grow only), `display_name`, `compartment_id`, tags: in place.
    "oci:Core/volume:Volume": Rule(
        (
            "availabilityDomain",
            "backupPolicyId",
            "sizeInMbs",
            "sourceDetails",
            "volumeBackupId",
            "xrcKmsKeyId",
        ),
        _OCI + "core_volume_resource.go",
    ),
    # Every input but the computed ones: an attachment has no update (no Update function).
    "oci:Core/volumeAttachment:VolumeAttachment": Rule(
        (
            "attachmentType",
            "instanceId",
            "volumeId",
            "device",
            "displayName",
            "encryptionInTransitType",
            "isAgentAutoIscsiLoginEnabled",
            "isPvEncryptionInTransitEnabled",
            "isReadOnly",
            "isShareable",
            "useChap",
        ),
        _OCI + "core_volume_attachment_resource.go",
    ),
    # `private_ip_id` (what the address is bound to), `display_name`, `compartment_id`: in place.
    "oci:Core/publicIp:PublicIp": Rule(
        ("lifetime", "publicIpPoolId"), _OCI + "core_public_ip_resource.go"
    ),
    # `cidr_blocks` (the list the program sets) is updated in place; `cidr_block` is not.
    "oci:Core/vcn:Vcn": Rule(
        ("cidrBlock", "dnsLabel", "ipv6privateCidrBlocks", "isOracleGuaAllocationEnabled"),
        _OCI + "core_vcn_resource.go",
    ),
    # `cidr_block`, `route_table_id`, `security_list_ids`, `display_name`: in place.
    "oci:Core/subnet:Subnet": Rule(
        (
            "vcnId",
            "availabilityDomain",
            "dnsLabel",
            "prohibitInternetIngress",
            "prohibitPublicIpOnVnic",
        ),
        _OCI + "core_subnet_resource.go",
    ),
    "oci:Core/securityList:SecurityList": Rule(("vcnId",), _OCI + "core_security_list_resource.go"),
    # The security list's schema without `vcn_id`, plus `manage_default_resource_id`
    # (ForceNew): helpers_core.go ConvertToDefaultVcnResourceSchema.
    "oci:Core/defaultSecurityList:DefaultSecurityList": Rule(
        ("manageDefaultResourceId",), _OCI + "helpers_core.go, core_security_list_resource.go"
    ),
    "oci:Core/routeTable:RouteTable": Rule(("vcnId",), _OCI + "core_route_table_resource.go"),
    "oci:Core/internetGateway:InternetGateway": Rule(
        ("vcnId",), _OCI + "core_internet_gateway_resource.go"
    ),
    # `schedules`, `display_name`, `destination_region`: in place.
    "oci:Core/volumeBackupPolicy:VolumeBackupPolicy": Rule(
        ("compartmentId",), _OCI + "core_volume_backup_policy_resource.go"
    ),
    "oci:Core/volumeBackupPolicyAssignment:VolumeBackupPolicyAssignment": Rule(
        ("assetId", "policyId", "xrcKmsKeyId"),
        _OCI + "core_volume_backup_policy_assignment_resource.go",
    ),
    # --- Docker ---------------------------------------------------------------------------
    # resource_docker_container.go. In place: `restart`, `max_retry_count`, `memory`,
    # `memory_reservation`, `memory_swap`, `cpu_shares`, `cpu_set` and the block-I/O limits
    # (resourceDockerContainerUpdate's list), and `must_run`. `healthcheck`, `wait`,
    # `wait_timeout` and the other fields without ForceNew change only the state.
    "docker:index/container:Container": Rule(
        (
            "name",
            "readOnly",
            "image",
            "hostname",
            "domainname",
            "command",
            "entrypoints",
            "user",
            "dns",
            "dnsOpts",
            "dnsSearches",
            "publishAllPorts",
            "workingDir",
            "capabilities",
            "securityOpts",
            "runtime",
            "platform",
            "stopSignal",
            "stopTimeout",
            "mounts",
            "volumes",
            "ports",
            "hosts",
            "ulimits",
            "envs",
            "privileged",
            "devices",
            "deviceRequests",
            "labels",
            "shmSize",
            "logDriver",
            "logOpts",
            "networkMode",
            "networksAdvanced",
            "pidMode",
            "usernsMode",
            "uploads",
            "sysctls",
            "ipcMode",
            "groupAdds",
            "tty",
            "stdinOpen",
            "storageOpts",
            "gpus",
            "cpus",
            "cgroupnsMode",
            "cgroupParent",
        ),
        _DOCKER + "resource_docker_container.go",
    ),
    # docker_image (Pulumi's RemoteImage): `keep_locally` and `force_remove` in place.
    "docker:index/remoteImage:RemoteImage": Rule(
        ("name", "pullTriggers", "triggers", "platform"),
        _DOCKER + "resource_docker_image.go",
    ),
    "docker:index/network:Network": Rule(
        (
            "name",
            "labels",
            "driver",
            "options",
            "internal",
            "attachable",
            "ingress",
            "ipv6",
            "ipamDriver",
            "ipamOptions",
            "ipamConfigs",
        ),
        _DOCKER + "resource_docker_network.go",
    ),
    "docker:index/volume:Volume": Rule(
        ("name", "labels", "driver", "driverOpts"), _DOCKER + "resource_docker_volume.go"
    ),
    # A provider's configuration change is an update of the provider, never a replacement of
    # it or of its resources: pulumi-docker's DiffConfig goes to the bridged provider
    # (pulumi/pulumi-docker provider/hybrid.go), whose configDiffer replaces only properties
    # marked ForcesProviderReplace (pulumi/pulumi-terraform-bridge pkg/tfbridge/provider.go),
    # and pulumi-docker marks none (provider/resources.go).
    "pulumi:providers:docker": Rule(
        (), "pulumi/pulumi-terraform-bridge pkg/tfbridge/provider.go configDiffer.DiffConfig"
    ),
    # --- pulumi-command -------------------------------------------------------------------
    "command:remote:Command": Rule(
        ("triggers",), "pulumi/pulumi-command v1.2.1 provider/pkg/provider/common/inputs.go"
    ),
    # --- generators -----------------------------------------------------------------------
    "random:index/randomPassword:RandomPassword": Rule(
        (
            "keepers",
            "length",
            "special",
            "upper",
            "lower",
            "number",
            "numeric",
            "minNumeric",
            "minUpper",
            "minLower",
            "minSpecial",
            "overrideSpecial",
        ),
        _RANDOM + "resource_password.go passwordSchemaV3",
    ),
    "random:index/randomBytes:RandomBytes": Rule(
        ("keepers", "length"), _RANDOM + "resource_bytes.go"
    ),
    # Every input has a RequiresReplace plan modifier.
    "tls:index/privateKey:PrivateKey": Rule(
        ("algorithm", "rsaBits", "ecdsaCurve"),
        "hashicorp/terraform-provider-tls internal/provider/resource_private_key.go",
    ),
    # Certificates: the PEM inputs replace once state holds a PEM (requireReplaceIfStateContains
    # PEMString); `early_renewal_hours` and `max_path_length` change in place. Apart from
    # inputs, ModifyPlan replaces a certificate within `early_renewal_hours` of its end
    # (common_cert.go, modifyPlanIfCertificateReadyForRenewal).
    "tls:index/selfSignedCert:SelfSignedCert": Rule(
        (
            "privateKeyPem",
            "validityPeriodHours",
            "allowedUses",
            "dnsNames",
            "ipAddresses",
            "uris",
            "isCaCertificate",
            "setSubjectKeyId",
            "setAuthorityKeyId",
            "subject",
        ),
        _TLS + "resource_self_signed_cert.go @ 7a60d4a3",
    ),
    "tls:index/certRequest:CertRequest": Rule(
        ("privateKeyPem", "dnsNames", "ipAddresses", "uris", "subject"),
        _TLS + "resource_cert_request.go @ 8486b516",
    ),
    "tls:index/locallySignedCert:LocallySignedCert": Rule(
        (
            "caCertPem",
            "caPrivateKeyPem",
            "certRequestPem",
            "validityPeriodHours",
            "allowedUses",
            "isCaCertificate",
            "setSubjectKeyId",
        ),
        _TLS + "resource_locally_signed_cert.go @ 1586a221",
    ),
    # --- OCI identity and Object Storage ---------------------------------------------------
    # `description`, `matching_rule`, tags: in place (updateIdentityDynamicGroup).
    "oci:Identity/dynamicGroup:DynamicGroup": Rule(
        ("compartmentId", "name"), _OCI_IDENTITY + "identity_dynamic_group_resource.go"
    ),
    # `statements`, `description`, `version_date`, tags: in place.
    "oci:Identity/policy:Policy": Rule(
        ("compartmentId", "name"), _OCI_IDENTITY + "identity_policy_resource.go"
    ),
    # `compartment_id`, `access_type`, `versioning`, `kms_key_id`, tags: in place.
    "oci:ObjectStorage/bucket:Bucket": Rule(
        ("name", "namespace", "storageTier"), _OCI_OBJECTS + "objectstorage_bucket_resource.go"
    ),
    # `rules`: in place (PutObjectLifecyclePolicy replaces the rule set).
    "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy": Rule(
        ("bucket", "namespace"), _OCI_OBJECTS + "objectstorage_object_lifecycle_policy_resource.go"
    ),
}


@dataclass(frozen=True)
class Plan:
    """What `pulumi up` would do to go from one run's registrations to another's, by URN."""

    replaced: frozenset[str]
    updated: frozenset[str]
    created: frozenset[str]
    deleted: frozenset[str]
    # The changed input paths that replace each replaced resource ("<dependency>" when the
    # change is a replaced resource's new ID).
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class UnknownTypeError(KeyError):
    """A custom resource type the table has no row for."""


def rule(type_: str) -> Rule:
    try:
        return FORCES_REPLACEMENT[type_]
    except KeyError:
        raise UnknownTypeError(f"{type_} has no row in dryrun/replacements.py") from None


def plan(before: ProgramRun, after: ProgramRun) -> Plan:
    """The replacements, updates, creations and deletions from `before` to `after`.

    Both runs must be made without preview (known IDs). An ID the mocks give a resource that
    is not replaced is the ID it keeps, so IDs are compared by URN, not by value."""
    old = {r.urn: r for r in before.registrations if r.custom}
    new = {r.urn: r for r in after.registrations if r.custom}
    renamed_ids = {after.ids[u]: before.ids[u] for u in old.keys() & new.keys()}
    changed: dict[str, set[str]] = {}
    for urn in old.keys() & new.keys():
        paths = set(_changed_paths(old[urn].inputs, _same_ids(new[urn].inputs, renamed_ids)))
        paths = {p for p in paths if not _covered(p, new[urn].ignore_changes)}
        if paths:
            changed[urn] = paths
    reasons: dict[str, tuple[str, ...]] = {}
    for urn, paths in changed.items():
        forcing = sorted(p for p in paths if _forces(new[urn], p))
        if forcing:
            reasons[urn] = tuple(forcing)
    # A replaced resource gets a new ID: every input that holds it changes too.
    pending = list(reasons)
    while pending:
        gone_urn = pending.pop()
        for urn, registration in new.items():
            if urn in reasons or urn not in old:
                continue
            holding = _inputs_from(registration, gone_urn, before.ids[gone_urn])
            forcing = sorted(p for p in holding if _forces(registration, p))
            changed.setdefault(urn, set()).update(holding)
            if forcing:
                reasons[urn] = tuple(f"{p} <dependency>" for p in forcing)
                pending.append(urn)
    return Plan(
        replaced=frozenset(reasons),
        updated=frozenset(u for u in changed if u not in reasons),
        created=frozenset(new.keys() - old.keys()),
        deleted=frozenset(old.keys() - new.keys()),
        reasons=reasons,
    )


def _inputs_from(registration: Registration, urn: str, id_: str) -> list[str]:
    """The input paths of `registration` that take a value from the resource `urn`: those
    that hold its ID, else (another of its outputs) each whole input that depends on it."""
    keys = [k for k, deps in registration.property_dependencies.items() if urn in deps]
    paths: list[str] = []
    for key in keys:
        holding = list(_paths_holding(registration.inputs.get(key), id_, key))
        paths += holding or [key]
    return paths


def _forces(registration: Registration, path: str) -> bool:
    forced = (*rule(registration.type).forces, *registration.replace_on_changes)
    return any(_related(path, f) for f in forced)


def _covered(path: str, ignored: tuple[str, ...]) -> bool:
    return any(path == i or path.startswith(f"{i}.") for i in map(_strip_indices, ignored))


def _related(path: str, forced: str) -> bool:
    """A change at `forced`, inside it, or of an object or list that holds it."""
    return path == forced or path.startswith(f"{forced}.") or forced.startswith(f"{path}.")


def _strip_indices(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "", path)


def _changed_paths(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths (list indices left out) where `new` differs from `old`."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            yield from _changed_paths(old.get(key), new.get(key), _join(prefix, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for old_item, new_item in zip(old, new, strict=True):
            yield from _changed_paths(old_item, new_item, prefix)
    elif old != new:
        yield prefix


def _paths_holding(value: Any, text: str, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths_holding(item, text, _join(prefix, key))
    elif isinstance(value, list):
        for item in value:
            yield from _paths_holding(item, text, prefix)
    elif isinstance(value, str) and text in value:
        yield prefix


def _same_ids(value: Any, renamed: Mapping[str, str]) -> Any:
    """`value` with each ID the second run gave a resource put back to the first run's."""
    if isinstance(value, dict):
        return {key: _same_ids(item, renamed) for key, item in value.items()}
    if isinstance(value, list):
        return [_same_ids(item, renamed) for item in value]
    if isinstance(value, str):
        for new_id, old_id in renamed.items():
            if new_id and new_id != old_id:
                value = value.replace(new_id, old_id)
        return value
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
