"""Which setting replaces what: each user-facing `ai-swarm:` setting changed in turn, the program
run twice under mocks, and the two runs' inputs compared through the providers' replacement
table (dryrun/replacements.py). No setting replaces the instance, the data volume or its
attachment, except those fixed at the instance's launch."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi_command
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dryrun.engine import ProgramRun, run_program
from dryrun.replacements import FORCES_REPLACEMENT, Plan, plan, rule

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
INSTANCE, VOLUME, ATTACHMENT = "host-instance", "host-data", "host-data-attachment"
HOST_AND_DATA = {INSTANCE, VOLUME, ATTACHMENT}


def _other_key_pair() -> tuple[str, str]:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return public.decode(), private.decode()


_PUBLIC, _PRIVATE = _other_key_pair()

# Everything on a new instance: each Docker resource, host command and image is tied to the
# instance OCID, and the attachment names the instance.
NEW_HOST = {
    INSTANCE,
    ATTACHMENT,
    "host-ready",
    "host-settings-firewall",
    "host-settings-sshd",
    "backups-pg-dump",
    "services-network",
    *(f"{s}-image" for s in ("postgres", "redis", "nodeExporter", "litellm", "openWebui")),
    *(f"{s}-image" for s in ("pipelines", "vault")),
    "postgres-postgres",
    "postgres-postgres-data-dirs",
    "redis-redis",
    "redis-redis-data-dirs",
    "redis-redis-sentinel",
    "redis-redis-sentinel-data-dirs",
    "nodeExporter-node-exporter",
    "litellm-litellm",
    "openWebui-open-webui",
    "openWebui-open-webui-data-dirs",
    "openWebui-register-litellm-key",
    "pipelines-pipelines",
    "pipelines-pipelines-data-dirs",
    "vault-vault",
    "vault-vault-data-dirs",
    "vault-vault-agent",
    "vault-rendered",
    "vault-agent-approle",
    "vault-seal-rewrap",
    "vault-kv-LITELLM_MASTER_KEY",
    "vault-kv-LITELLM_SALT_KEY",
    "vault-agent-reconcile",
    "offsite-uploader",
}
# What off-site copies add to the stack: all of it goes when they are turned off.
OFFSITE = {
    "offsite-bucket",
    "offsite-lifecycle",
    "offsite-lifecycle-policy",
    "offsite-host-group",
    "offsite-host-policy",
    "offsite-uploader",
}
CONTAINERS = {
    "postgres-postgres",
    "redis-redis",
    "redis-redis-sentinel",
    "nodeExporter-node-exporter",
    "litellm-litellm",
    "openWebui-open-webui",
    "pipelines-pipelines",
    "vault-vault",
}
# Open WebUI's key is registered again whenever the LiteLLM container is new.
NEW_LITELLM = {"litellm-litellm", "openWebui-register-litellm-key"}


def _services(**fields: dict[str, Any]) -> dict[str, str]:
    return {"services": json.dumps(fields)}


# An age X25519 public key (any valid one: the program checks its form only).
AGE_RECIPIENT = "age1h9gf7fgyx0ep3jtcd49uey8rcthseemmuw692ugmphaap5xqpfrqwuwhus"


def _backups(**fields: Any) -> dict[str, str]:
    return {"backups": json.dumps(fields)}


def _replica(**fields: Any) -> dict[str, str]:
    return {"replica": json.dumps(fields), "dataVolumeGb": "100"}


# setting: (overrides, secrets, the resources it replaces, the resources it deletes)
SETTINGS: Mapping[str, tuple[dict[str, str], dict[str, str], set[str], set[str]]] = {
    "compartmentOcid": (
        {"compartmentOcid": "ocid1.compartment.oc1..another"},
        {},
        {"backups-data-policy", "backups-data-assignment"},
        set(),
    ),
    "adminCidrs": ({"adminCidrs": json.dumps(["203.0.113.0/24"])}, {}, set(), set()),
    "sshPublicKey": ({"sshPublicKey": _PUBLIC}, {"sshPrivateKey": _PRIVATE}, NEW_HOST, set()),
    "profile": ({"profile": "a1-4x24"}, {}, CONTAINERS | NEW_LITELLM, set()),
    "ocpus": ({"ocpus": "1"}, {}, set(), set()),
    "memoryGb": ({"memoryGb": "8"}, {}, set(), set()),
    "bootVolumeGb": ({"bootVolumeGb": "60"}, {}, set(), set()),
    "dataVolumeGb": ({"dataVolumeGb": "180"}, {}, set(), set()),
    # The volume cannot follow the instance to another domain: the plan replaces it too, and
    # its protection stops the `up` there.
    "availabilityDomain": (
        {"availabilityDomain": "2"},
        {},
        NEW_HOST | {VOLUME, "backups-data-assignment"},
        set(),
    ),
    "hostName": ({"hostName": "other-host"}, {}, set(), set()),
    "vcnCidr": ({"vcnCidr": "10.0.0.0/20"}, {}, set(), set()),
    # The host's private address (the subnet's 10th) is fixed at launch.
    "subnetCidr": ({"subnetCidr": "10.0.2.0/24"}, {}, NEW_HOST, set()),
    "services.<service>.image": (
        _services(redis={"image": "redis:7.4.6-alpine"}),
        {},
        {"redis-image", "redis-redis", "redis-redis-sentinel"},
        set(),
    ),
    "services.<service>.cpus": (_services(redis={"cpus": 0.3}), {}, {"redis-redis"}, set()),
    # Redis' maxmemory is in its config file, which the container is made with.
    "services.<service>.memoryMb": (
        _services(redis={"memoryMb": 300}),
        {},
        {"redis-redis"},
        set(),
    ),
    "services.<service>.enabled": (
        _services(pipelines={"enabled": False}),
        {},
        {"openWebui-open-webui"},
        {"pipelines-api-key", "pipelines-image", "pipelines-pipelines"}
        | {"pipelines-pipelines-data-dirs"},
    ),
    "models": (
        {"models": json.dumps([{"name": "mini", "model": "openai/gpt-4o-mini"}])},
        {},
        NEW_LITELLM,
        set(),
    ),
    "modelApiKeys": (
        {},
        {"modelApiKeys": json.dumps({"OPENAI_API_KEY": "sk-test-0000"})},
        NEW_LITELLM | {"vault-vault-agent"},
        set(),
    ),
    "exposeUis": (
        {"exposeUis": "true"},
        {},
        {"litellm-litellm", "openWebui-open-webui", "openWebui-register-litellm-key"},
        set(),
    ),
    "sshIdentityFile": ({"sshIdentityFile": "~/.ssh/another"}, {}, set(), set()),
    "backups.keep": (_backups(keep=3), {}, set(), set()),
    "backups.period": (_backups(period="ONE_MONTH", dayOfMonth=3), {}, set(), set()),
    "backups.type": (_backups(type="FULL"), {}, set(), set()),
    "backups.dayOfWeek": (_backups(dayOfWeek="SATURDAY"), {}, set(), set()),
    # The nightly dump runs an hour before the backup: a new timer, installed again.
    "backups.hourOfDay": (_backups(hourOfDay=5), {}, {"backups-pg-dump"}, set()),
    "backups.enabled": (
        _backups(enabled=False),
        {},
        set(),
        {"backups-data-policy", "backups-data-assignment"} | OFFSITE,
    ),
    "backups.offsite": (_backups(offsite=False), {}, set(), OFFSITE),
    # The uploader's settings file on the host: installed again.
    "backups.offsiteDays": (_backups(offsiteDays=30), {}, {"offsite-uploader"}, set()),
    "backups.ageRecipient": (
        _backups(ageRecipient=AGE_RECIPIENT),
        {},
        {"offsite-uploader"},
        set(),
    ),
    # The replica adds its host and opens Postgres' port: of the A1, only the Postgres
    # container is replaced (a restart with logical WAL, TLS and its port on the private
    # address; its data stays on the volume), nothing deleted (the data volume must be 100 GB
    # beside it; a real one cannot shrink, see docs/replica.md).
    "replica.enabled": (_replica(enabled=True), {}, {"postgres-postgres"}, set()),
    "replica.externalCidrs": (
        _replica(enabled=True, externalCidrs=["198.51.100.7/32"]),
        {},
        {"postgres-postgres"},
        set(),
    ),
}
# A setting that must replace the host: what OCI fixes at launch.
REPLACES_HOST = {"sshPublicKey", "availabilityDomain", "subnetCidr"}


@pytest.fixture(scope="module")
def before() -> ProgramRun:
    return run_program()


def _names(urns: frozenset[str]) -> set[str]:
    return {urn.rsplit("::", 1)[1] for urn in urns}


def _plan_for(before: ProgramRun, setting: str) -> Plan:
    overrides, secrets, _, _ = SETTINGS[setting]
    return plan(before, run_program(overrides=overrides, secrets=secrets))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_each_setting_replaces_what_the_providers_say(before: ProgramRun, setting: str) -> None:
    _, _, replaced, deleted = SETTINGS[setting]
    found = _plan_for(before, setting)
    assert _names(found.replaced) == replaced, found.reasons
    assert _names(found.deleted) == deleted
    if setting not in REPLACES_HOST:
        assert not _names(found.replaced | found.deleted) & HOST_AND_DATA


def test_a_new_host_name_updates_the_host_in_place(before: ProgramRun) -> None:
    """The documented promise: display names, hostname label and tags change, nothing is
    replaced (the attachment's display name is fixed: OCI cannot update an attachment)."""
    found = _plan_for(before, "hostName")
    assert {INSTANCE, VOLUME, "host-ip"} <= _names(found.updated)
    assert not found.replaced


def test_the_instance_is_replaced_only_for_what_oci_fixes_at_launch(before: ProgramRun) -> None:
    replacing = {s for s in SETTINGS if INSTANCE in _names(_plan_for(before, s).replaced)}
    assert replacing == REPLACES_HOST


def test_every_setting_the_program_reads_is_changed_here() -> None:
    """A new `ai-swarm:` key must get a row above (and, if it replaces something, a `replaces`
    in its definition, which docs/configuration.md shows)."""
    read: set[str] = set()
    for path in Path(__file__).resolve().parents[1].glob("components/config/*.py"):
        for pair in re.findall(r'cfg, "([A-Za-z]+)"|cfg\.get\("([A-Za-z]+)"\)', path.read_text()):
            read |= {name for name in pair if name}
    assert {"hostName", "backups", "services"} <= read  # the pattern still finds the keys
    changed = {setting.split(".")[0] for setting in SETTINGS} | {"sshPrivateKey"}
    assert read - changed == set()


def test_every_registered_type_has_a_row(before: ProgramRun) -> None:
    big = run_program(overrides={"profile": "a1-4x24", "exposeUis": "true"})
    for registration in (*before.registrations, *big.registrations):
        if registration.custom:
            rule(registration.type)


def _input_names(args_type: type) -> dict[str, type | None]:
    """The wire names of an SDK input type's properties, with the input type each holds."""
    names: dict[str, type | None] = {}
    module = sys.modules[args_type.__module__]
    package = sys.modules[module.__name__.rsplit(".", 1)[0]]
    for attribute, value in vars(args_type).items():
        if isinstance(value, property):
            wire = getattr(value.fget, "_pulumi_name", None) or attribute
            hint = str(getattr(value.fget, "__annotations__", {}).get("return", ""))
            nested = re.findall(r"([A-Z][A-Za-z0-9]*Args)\b", hint)
            names[wire] = _find_type(package, nested[0]) if nested else None
    return names


def _find_type(package: Any, name: str) -> type | None:
    for module_name in ("inputs", "_inputs"):
        module = getattr(package, module_name, None)
        if module is not None and hasattr(module, name):
            found: type = getattr(module, name)
            return found
    return None


def _resource_args(type_: str) -> type:
    """`oci:Core/instance:Instance` -> pulumi_oci.core.InstanceArgs."""
    package, module, name = type_.split(":")
    submodule = module.split("/")[0].lower()
    root = importlib.import_module(f"pulumi_{package}")
    holder = root if submodule == "index" else getattr(root, submodule)
    found: type = getattr(holder, f"{name}Args")
    return found


@pytest.mark.parametrize("type_", sorted(FORCES_REPLACEMENT))
def test_each_row_names_inputs_the_sdk_sends(type_: str) -> None:
    """A misspelt path would never match a change: every step of each path is an input name."""
    if type_ == "command:remote:Command":
        args: type = pulumi_command.remote.CommandArgs
    elif type_.startswith("pulumi:providers:"):
        return
    else:
        args = _resource_args(type_)
    for path in rule(type_).forces:
        # `metadata.<key>`: a map's keys, not input names
        steps = ["metadata"] if path.startswith("metadata.") else path.split(".")
        current: type | None = args
        for step in steps:
            assert current is not None, f"{type_}: {path}"
            names = _input_names(current)
            assert step in names, f"{type_}: {path} ({step} not in {sorted(names)})"
            current = names[step]


def _documented_replacements() -> dict[str, str]:
    text = PAGE.read_text()
    start = text.index("Settings that replace resources")
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|") and not line.startswith("|---") and "setting" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            for key in re.findall(r"`ai-swarm:([^`]+)`", cells[0]):
                rows[key] = cells[1]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_docs_list_the_settings_that_replace_resources(before: ProgramRun) -> None:
    rows = _documented_replacements()
    for setting, (_, _, replaced, _) in SETTINGS.items():
        documented = rows.get(setting)
        if not replaced:
            assert documented is None, f"the docs say {setting} replaces {documented}"
            continue
        assert documented is not None, f"the docs do not say what {setting} replaces"
        assert ("instance" in documented) == (INSTANCE in replaced), setting
        assert ("data volume" in documented) == (VOLUME in replaced), setting
        assert ("container" in documented) == bool(replaced & CONTAINERS), setting


def test_a_protected_secret_stops_the_disabling_of_its_service(before: ProgramRun) -> None:
    """Open WebUI's secret key is protected: disabling Open WebUI would delete it, which the
    engine refuses, as docs/configuration.md says."""
    found = plan(before, run_program(overrides=_services(openWebui={"enabled": False})))
    protected = {r.name for r in before.registrations if r.protect}
    assert "openWebui-secret-key" in _names(found.deleted) & protected
    assert "`ai-swarm:services.openWebui.enabled`" in PAGE.read_text()
