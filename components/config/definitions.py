"""What each config key is, for people: type, default, allowed values, what a change replaces.

One `Definition` per key the program reads (and per field of a structured key). The readers in
this package validate; these definitions describe, from the same constants the readers use, so
a default or a bound lives in one place. `python -m scripts.config_reference` prints
docs/configuration.md from them, and tests/test_config_reference.py keeps the committed page
equal to that output and each documented default equal to what `load_config` yields.

To document a new key, add one `Definition` to `DEFINITIONS` (in the order the page should
show it), take its default and bounds from the reader's own constants, and regenerate the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config.backups import (
    BACKUP_TYPES,
    DAYS_OF_WEEK,
    DEFAULT_DAY_OF_MONTH,
    LAST_DAY_OF_MONTH,
    MAX_DATA_VOLUME_BACKUPS,
    MAX_OFFSITE_DAYS,
    OFFSITE_DAYS,
    PERIOD_SECONDS,
    BackupSchedule,
)
from components.config.host import (
    DEFAULT_AVAILABILITY_DOMAIN,
    DEFAULT_BOOT_VOLUME_GB,
    DEFAULT_DATA_VOLUME_GB,
    DEFAULT_HOST_NAME,
    DEFAULT_SUBNET_CIDR,
    DEFAULT_VCN_CIDR,
    MAX_SUBNET_PREFIX,
    MAX_VCN_PREFIX,
    MAX_VOLUME_GB,
    MIN_ADMIN_PREFIX,
    MIN_BLOCK_VOLUME_GB,
    MIN_BOOT_VOLUME_GB,
    MIN_VCN_PREFIX,
)
from components.config.replica import MIN_EXTERNAL_PREFIX, REPLICA_ADDRESS_INDEX
from components.config.services import (
    EXPOSE_UIS_DEFAULT,
    MIN_CONTAINER_MEMORY_MB,
    MIN_CONTAINER_MILLICPUS,
    RESERVED_ENV_PREFIXES,
)
from components.services.catalog import CONFIGURABLE, NETWORK_SUBNET
from components.sizing import (
    A1_MAX_MEMORY_GB,
    A1_MAX_MEMORY_GB_PER_OCPU,
    A1_MAX_OCPUS,
    A1_MIN_MEMORY_GB_PER_OCPU,
    DEFAULT_PROFILE,
    MILLICPUS_PER_CPU,
    PROFILES,
)

Default = str | int | bool | None


@dataclass(frozen=True)
class Definition:
    """One key as `pulumi config set` takes it.

    `default` is the value the program uses when the key is unset (None: there is none, the key
    is required or optional), in the form `pulumi config set` would write; `default_text`
    describes a default that is not one value (taken from another key, say). `choices` are the
    only values allowed; otherwise `allowed` says what is. `replaces` names what a change
    replaces (None: it changes resources in place), as dryrun/replacements.py computes it and
    tests/test_replacements.py checks. `example` is one or more whole `pulumi config set`
    commands, one a line, the last one setting this key.
    """

    key: str
    type: str
    doc: str
    example: str
    default: Default = None
    default_text: str | None = None
    choices: tuple[str, ...] = ()
    allowed: str = ""
    required: bool = False
    secret: bool = False
    replaces: str | None = None

    @property
    def namespace(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def name(self) -> str:
        """The key without its namespace: `backups.keep`, `services.<service>.image`."""
        return self.key.split(":", 1)[1]

    @property
    def allowed_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(f"`{choice}`" for choice in self.choices)
        return self.allowed

    @property
    def default_shown(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.required:
            return "required"
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


def _set(path: str, value: str, *, secret: bool = False, path_flag: bool = False) -> str:
    flags = " --secret" if secret else ""
    flags += " --path" if path_flag else ""
    return f"pulumi config set{flags} {path} {value}"


def _whole(low: int, high: int, unit: str = "") -> str:
    return f"a whole number from {low} to {high}{unit}"


_SERVICES = ", ".join(f"`{key}`" for key in CONFIGURABLE)
_PROFILE_SIZES = "; ".join(
    f"`{name}`: {profile.host.ocpus} OCPU / {profile.host.memory_gb} GB"
    for name, profile in PROFILES.items()
)


def _host_replaced(why: str) -> str:
    return (
        f"the instance ({why}), and with it the volume attachment and everything tied to the "
        "instance: every container, image and host command (see "
        "[Replacement](operations.md#replacement))"
    )


# Not computed by dryrun/replacements.py, which changes the `ai-swarm:` keys only.
_NEW_STACK = (
    "not computed here: a stack lives in one region and tenancy; for another, make another stack"
)

OCI_DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        key="oci:region",
        type="string",
        doc="Your home region: Always Free A1 capacity exists only there, and the off-site "
        "backups' IAM resources are written there.",
        example=_set("oci:region", "eu-frankfurt-1"),
        required=True,
        allowed="a region identifier, e.g. `eu-frankfurt-1`",
        replaces=_NEW_STACK,
    ),
    Definition(
        key="oci:tenancyOcid",
        type="string (OCID)",
        doc="The tenancy; also used to list its availability domains and as the compartment "
        "of IAM resources.",
        example=_set("oci:tenancyOcid", "ocid1.tenancy.oc1..aaaa…"),
        required=True,
        allowed="an OCID, `ocid1.tenancy.oc1..…`",
        replaces=_NEW_STACK,
    ),
)

DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        key="ai-swarm:compartmentOcid",
        type="string (OCID)",
        doc="The compartment every resource is made in.",
        example=_set("ai-swarm:compartmentOcid", "ocid1.compartment.oc1..aaaa…"),
        default_text="the tenancy (`oci:tenancyOcid`)",
        allowed="an OCID, `ocid1.compartment.oc1..…`",
        replaces="the backup policy and its assignment (OCI cannot move a backup policy)",
    ),
    Definition(
        key="ai-swarm:adminCidrs",
        type="list of strings",
        doc="Who may reach SSH (and, with `exposeUis`, the UIs): the security list, the host "
        "firewall and Docker's `DOCKER-USER` chain admit these sources only. A JSON list, "
        "`--path` entries, or comma-separated text.",
        example=_set("'ai-swarm:adminCidrs[0]'", "203.0.113.7/32", path_flag=True),
        required=True,
        allowed=f"IPv4 CIDRs of /{MIN_ADMIN_PREFIX[4]} or narrower, no host bits set (the VCN "
        "has no IPv6)",
    ),
    Definition(
        key="ai-swarm:sshPublicKey",
        type="string",
        doc="The OpenSSH public key installed for `ubuntu` on the host.",
        example=_set("ai-swarm:sshPublicKey", '"$(cat ~/.ssh/ai-swarm.pub)"'),
        required=True,
        allowed="an OpenSSH public key line: `ssh-ed25519`, `ssh-rsa` or `ecdsa-sha2-nistp*`",
        replaces=_host_replaced("OCI fixes its key at launch"),
    ),
    Definition(
        key="ai-swarm:sshPrivateKey",
        type="string, secret",
        doc="Its private half, for the program's remote commands; checked to match the public "
        "key. Refused unless set with `--secret`.",
        example=_set("ai-swarm:sshPrivateKey", '-- "$(cat ~/.ssh/ai-swarm)"', secret=True),
        required=True,
        secret=True,
        allowed="the whole OpenSSH or PEM private key file, without a passphrase (ed25519, rsa "
        "or ecdsa)",
    ),
    Definition(
        key="ai-swarm:sshIdentityFile",
        type="string (path)",
        doc="The private key file your local `ssh` uses for Docker over SSH (pulumi-docker "
        "takes no key argument); without it, `ssh-add` the key to your agent.",
        example=_set("ai-swarm:sshIdentityFile", "~/.ssh/ai-swarm"),
        allowed="a path without spaces",
    ),
    Definition(
        key="ai-swarm:profile",
        type="string",
        doc="The host size and every container's CPU and memory limit "
        "([budgets](architecture.md#sizing-profiles-and-budgets)). "
        f"{_PROFILE_SIZES}.",
        example=_set("ai-swarm:profile", "a1-4x24"),
        default=DEFAULT_PROFILE,
        choices=tuple(PROFILES),
        replaces="every container (their CPU limits are fixed when they are made)",
    ),
    Definition(
        key="ai-swarm:ocpus",
        type="whole number",
        doc="Overrides the profile's OCPUs (A1.Flex).",
        example=_set("ai-swarm:ocpus", "1"),
        default_text="the profile's",
        allowed=_whole(1, A1_MAX_OCPUS),
    ),
    Definition(
        key="ai-swarm:memoryGb",
        type="whole number",
        doc="Overrides the profile's memory (A1.Flex).",
        example=_set("ai-swarm:memoryGb", "6"),
        default_text="the profile's, brought within the OCPUs' bounds",
        allowed=f"{A1_MIN_MEMORY_GB_PER_OCPU} to {A1_MAX_MEMORY_GB_PER_OCPU} GB per OCPU, at "
        f"most {A1_MAX_MEMORY_GB}",
    ),
    Definition(
        key="ai-swarm:bootVolumeGb",
        type="whole number",
        doc="The boot volume's size in GB.",
        example=_set("ai-swarm:bootVolumeGb", "60"),
        default=DEFAULT_BOOT_VOLUME_GB,
        allowed=_whole(MIN_BOOT_VOLUME_GB, MAX_VOLUME_GB),
    ),
    Definition(
        key="ai-swarm:dataVolumeGb",
        type="whole number",
        doc="The state volume at `/mnt/data`, in GB. A volume cannot shrink.",
        example=_set("ai-swarm:dataVolumeGb", "150"),
        default=DEFAULT_DATA_VOLUME_GB,
        allowed=_whole(MIN_BLOCK_VOLUME_GB, MAX_VOLUME_GB),
    ),
    Definition(
        key="ai-swarm:availabilityDomain",
        type="string",
        doc="Where the host and its data volume live; `python -m deploy up` rotates it while "
        "the stack has no data volume.",
        example=_set("ai-swarm:availabilityDomain", "2"),
        default=DEFAULT_AVAILABILITY_DOMAIN,
        allowed="a 1-based index or a domain's full name",
        replaces=_host_replaced("it cannot move to another domain")
        + ", and the data volume, which cannot move either: the volume's protection stops the "
        "`up` there",
    ),
    Definition(
        key="ai-swarm:hostName",
        type="string",
        doc="Display names, hostname label and tags, changed in place (resources have fixed "
        "names; containers are placed by the fixed `ai-swarm-host` tag `host`).",
        example=_set("ai-swarm:hostName", "swarm-a1"),
        default=DEFAULT_HOST_NAME,
        allowed="1-15 lowercase letters, digits or `-`, starting with a letter",
    ),
    Definition(
        key="ai-swarm:vcnCidr",
        type="string (CIDR)",
        doc="The VCN's address range.",
        example=_set("ai-swarm:vcnCidr", "10.0.0.0/16"),
        default=DEFAULT_VCN_CIDR,
        allowed=f"an IPv4 network from /{MIN_VCN_PREFIX} to /{MAX_VCN_PREFIX}, apart from the "
        f"services' Docker network `{NETWORK_SUBNET}`",
    ),
    Definition(
        key="ai-swarm:subnetCidr",
        type="string (CIDR)",
        doc="The public subnet; the host takes its 10th address.",
        example=_set("ai-swarm:subnetCidr", "10.0.1.0/24"),
        default=DEFAULT_SUBNET_CIDR,
        allowed=f"an IPv4 network of /{MAX_SUBNET_PREFIX} or larger inside `vcnCidr`",
        replaces=_host_replaced("OCI fixes its private address, the subnet's 10th, at launch"),
    ),
    Definition(
        key="ai-swarm:exposeUis",
        type="boolean",
        doc="`true` publishes Open WebUI (8080) and LiteLLM (4000) on the host's private "
        "address and opens them to `adminCidrs` in the security list and the host firewall; "
        "otherwise they listen on loopback and are reached through the `uiTunnel` output.",
        example=_set("ai-swarm:exposeUis", "true"),
        default=EXPOSE_UIS_DEFAULT,
        choices=("true", "false"),
        replaces="the LiteLLM and Open WebUI containers (their published address)",
    ),
    Definition(
        key="ai-swarm:services.<service>.image",
        type="string",
        doc=f"Per-service image override; `<service>` is one of {_SERVICES}. Postgres keeps "
        "its major version (see [upgrades](operations.md#upgrading-an-image-tag)).",
        example=_set("'ai-swarm:services.redis.image'", "redis:7.4.6-alpine", path_flag=True),
        default_text="the catalog's (`components/services/catalog.py`)",
        allowed="an image pinned to a version tag or digest; no moving tag (`latest`, `main`, "
        "`stable` …)",
        replaces="the service's image and its containers",
    ),
    Definition(
        key="ai-swarm:services.<service>.cpus",
        type="number",
        doc="The service's main container's CPU limit (sidecars keep theirs).",
        example=_set("ai-swarm:services.litellm.cpus", "0.5", path_flag=True),
        default_text="the profile's",
        allowed=f"from {MIN_CONTAINER_MILLICPUS / MILLICPUS_PER_CPU:g} to the host's OCPUs",
        replaces="the service's containers",
    ),
    Definition(
        key="ai-swarm:services.<service>.memoryMb",
        type="whole number",
        doc="The service's main container's memory limit in MB.",
        example=_set("ai-swarm:services.litellm.memoryMb", "2560", path_flag=True),
        default_text="the profile's",
        allowed=f"from {MIN_CONTAINER_MEMORY_MB} to the host's memory",
        replaces="Redis' container (its `maxmemory` is in its config file); other services' "
        "containers change in place",
    ),
    Definition(
        key="ai-swarm:services.<service>.enabled",
        type="boolean",
        doc="Leaves a service out; a service another one needs cannot be left out alone. A "
        "service whose data depends on a generated secret cannot be disabled by `pulumi up` "
        "alone: the secret is protected ([Destroying without losing the data volume]"
        "(operations.md#destroying-without-losing-the-data-volume)), so setting "
        "`ai-swarm:services.openWebui.enabled` (or that of LiteLLM, Postgres or Vault) to "
        "`false` stops the `up` at it. To drop the service and its data for good, `pulumi "
        "state unprotect` its secrets first.",
        example=_set("ai-swarm:services.pipelines.enabled", "false", path_flag=True),
        default=True,
        choices=("true", "false"),
        replaces="the containers that use the service (disabling Pipelines replaces Open WebUI's)",
    ),
    Definition(
        key="ai-swarm:models",
        type="list of objects",
        doc="LiteLLM's routes: `name` (what clients ask for), `model` (the provider's), "
        "optional `apiKey` (a name in `modelApiKeys`) and `apiBase` (an http(s) URL).",
        example=_set("'ai-swarm:modelApiKeys.OPENAI_API_KEY'", "sk-…", secret=True, path_flag=True)
        + "\n"
        + _set(
            "ai-swarm:models",
            '\'[{"name": "gpt-4o-mini", "model": "openai/gpt-4o-mini", '
            '"apiKey": "OPENAI_API_KEY"}]\'',
        ),
        default_text="none",
        allowed="each name once; fields `name`, `model`, `apiKey`, `apiBase`",
        replaces="LiteLLM's container",
    ),
    Definition(
        key="ai-swarm:modelApiKeys",
        type="object, secret",
        doc="Provider API keys by environment variable name; they reach LiteLLM through Vault, "
        "never a container environment. Refused unless set with `--secret`.",
        example=_set("'ai-swarm:modelApiKeys.OPENAI_API_KEY'", "sk-…", secret=True, path_flag=True),
        default_text="none",
        secret=True,
        allowed="upper-case names of your own: no prefix the program sets ("
        + ", ".join(f"`{prefix}`" for prefix in RESERVED_ENV_PREFIXES)
        + ") nor a system variable (`PATH`, `LD_PRELOAD`, …)",
        replaces="LiteLLM's container (and, for a new key, the Vault Agent's)",
    ),
    Definition(
        key="ai-swarm:backups.enabled",
        type="boolean",
        doc="The data volume's OCI backups. `false` takes none and, unless `offsite` is set, "
        "makes no off-site copies (the nightly dumps go on).",
        example=_set("ai-swarm:backups.enabled", "false", path_flag=True),
        default=BackupSchedule.enabled,
        choices=("true", "false"),
    ),
    Definition(
        key="ai-swarm:backups.keep",
        type="whole number",
        doc="Volume backups kept. Always Free includes five in total, boot and block volumes "
        "together; the boot volume keeps none.",
        example=_set("ai-swarm:backups.keep", "3", path_flag=True),
        default=BackupSchedule.keep,
        allowed=_whole(1, MAX_DATA_VOLUME_BACKUPS),
    ),
    Definition(
        key="ai-swarm:backups.period",
        type="string",
        doc="How often a volume backup is taken.",
        example=_set("ai-swarm:backups.period", "ONE_DAY", path_flag=True),
        default=BackupSchedule.period,
        choices=tuple(PERIOD_SECONDS),
    ),
    Definition(
        key="ai-swarm:backups.type",
        type="string",
        doc="The volume backups' type.",
        example=_set("ai-swarm:backups.type", "FULL", path_flag=True),
        default=BackupSchedule.backup_type,
        choices=BACKUP_TYPES,
    ),
    Definition(
        key="ai-swarm:backups.dayOfWeek",
        type="string",
        doc="The weekday of a `ONE_WEEK` schedule (refused with another period).",
        example=_set("ai-swarm:backups.dayOfWeek", "SATURDAY", path_flag=True),
        default=BackupSchedule.day_of_week,
        choices=DAYS_OF_WEEK,
    ),
    Definition(
        key="ai-swarm:backups.dayOfMonth",
        type="whole number",
        doc="The day of a `ONE_MONTH` schedule (refused with another period).",
        example=_set("ai-swarm:backups.period", "ONE_MONTH", path_flag=True)
        + "\n"
        + _set("ai-swarm:backups.dayOfMonth", "3", path_flag=True),
        default=DEFAULT_DAY_OF_MONTH,
        allowed=_whole(1, LAST_DAY_OF_MONTH),
    ),
    Definition(
        key="ai-swarm:backups.hourOfDay",
        type="whole number",
        doc="The volume backup's hour, UTC; the nightly `pg_dump` runs an hour before.",
        example=_set("ai-swarm:backups.hourOfDay", "5", path_flag=True),
        default=BackupSchedule.hour_of_day,
        allowed=_whole(0, 23),
        replaces="the host step that installs the dump timer (it runs again: the dump moves "
        "with the backup hour)",
    ),
    Definition(
        key="ai-swarm:backups.offsite",
        type="boolean",
        doc="Copy the nightly dumps to Object Storage.",
        example=_set("ai-swarm:backups.offsite", "false", path_flag=True),
        default_text="as `backups.enabled`",
        choices=("true", "false"),
    ),
    Definition(
        key="ai-swarm:backups.offsiteDays",
        type="whole number",
        doc="Days each off-site dump is kept (a year of even 55 MB dumps would fill the free "
        "20 GB; the policy pack checks the real arithmetic).",
        example=_set("ai-swarm:backups.offsiteDays", "30", path_flag=True),
        default=OFFSITE_DAYS,
        allowed=_whole(1, MAX_OFFSITE_DAYS),
        replaces="the host step that installs the off-site uploader (it runs again with the "
        "new values)",
    ),
    Definition(
        key="ai-swarm:backups.ageRecipient",
        type="string",
        doc="An [age](https://age-encryption.org) public key: the host encrypts each dump "
        "with it before it leaves; the private key stays with you.",
        example=_set(
            "ai-swarm:backups.ageRecipient",
            "age1h9gf7fgyx0ep3jtcd49uey8rcthseemmuw692ugmphaap5xqpfrqwuwhus",
            path_flag=True,
        ),
        default_text="none (Oracle's server-side encryption only)",
        allowed="an age X25519 public key, `age1…` (Bech32-checked)",
        replaces="the host step that installs the off-site uploader (it runs again with the "
        "new values)",
    ),
)


_REPLICA_PRIMARY = (
    "the `postgres` container (its data stays on the volume): its command gains logical WAL "
    "and TLS, its files the certificate and the subscribers' pg_hba lines, and it is published "
    "on the private address"
)
_REPLICA_ON = (
    _set("ai-swarm:dataVolumeGb", "100")
    + "\n"
    + _set("ai-swarm:replica.enabled", "true", path_flag=True)
)
DEFINITIONS += (
    Definition(
        key="ai-swarm:replica.enabled",
        type="boolean",
        doc="Adds the replica host, an x86_64 `VM.Standard.E2.1.Micro` holding a live "
        "PostgreSQL logical replica of the A1's databases ([replica](replica.md)), and opens "
        "the A1's Postgres to the replica's peers. The free 200 GB must then hold the A1's boot "
        "and data volumes and the Micro's 50 GB boot volume: a data volume of at most 100 GB "
        "with the default boot volume.",
        example=_REPLICA_ON,
        replaces=_REPLICA_PRIMARY,
        default=False,
        choices=("true", "false"),
    ),
    Definition(
        key="ai-swarm:replica.privateIp",
        type="string (IPv4 address)",
        doc="The Micro's fixed private address; refused while `replica.enabled` is false.",
        example=_REPLICA_ON
        + "\n"
        + _set("ai-swarm:replica.privateIp", "10.0.1.20", path_flag=True),
        default_text=f"the subnet's address + {REPLICA_ADDRESS_INDEX}",
        allowed="an address of `subnetCidr` that OCI does not reserve (the first two, the last), "
        "other than the A1 host's",
    ),
    Definition(
        key="ai-swarm:replica.externalCidrs",
        type="list of strings",
        doc="Off-cloud subscribers (a Railway service, a home server) that may reach the A1's "
        "Postgres too; refused while `replica.enabled` is false.",
        example=_REPLICA_ON
        + "\n"
        + _set("'ai-swarm:replica.externalCidrs[0]'", "198.51.100.7/32", path_flag=True),
        replaces=_REPLICA_PRIMARY,
        default_text="none",
        allowed=f"IPv4 CIDRs outside `vcnCidr`, each /{MIN_EXTERNAL_PREFIX} or narrower",
    ),
)

# The operator CLI (`python -m deploy`) reads these from the stack config too; the program
# itself does not (the OCI provider reads them).
CREDENTIAL_KEYS: tuple[tuple[str, str], ...] = (
    ("oci:userOcid", "the user whose API signing key is used"),
    ("oci:fingerprint", "the API key's fingerprint"),
    ("oci:privateKeyPath", "the API private key's file"),
    ("oci:privateKey", "or the key's text itself (secret)"),
    ("oci:privateKeyPassword", "its passphrase, if it has one (secret)"),
    ("oci:configFileProfile", "instead of the keys above: a profile of `~/.oci/config`"),
)


def find(name: str) -> Definition | None:
    """The definition of a key as a command writes it (`ai-swarm:services.redis.image`,
    `ai-swarm:adminCidrs[0]`, `ai-swarm:modelApiKeys.OPENAI_API_KEY`, `oci:region`), or None
    when the program reads no such key."""
    by_key = {d.key: d for d in (*OCI_DEFINITIONS, *DEFINITIONS)}
    namespace, _, path = name.partition(":")
    base, _, index = path.partition("[")
    if index:  # a list entry, `adminCidrs[0]`
        found = by_key.get(f"{namespace}:{base}")
        return found if found is not None and found.type.startswith("list") else None
    parts = path.split(".")
    if parts[0] == "services" and len(parts) == 3 and parts[1] in CONFIGURABLE:
        parts[1] = "<service>"
    elif parts[0] == "modelApiKeys" and len(parts) == 2:  # names are the user's own
        parts = parts[:1]
    return by_key.get(f"{namespace}:{'.'.join(parts)}")
