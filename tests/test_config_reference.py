"""docs/configuration.md is what the config definitions print, and the definitions say what the
readers do: each documented default is what `load_config` yields with the key unset, each
documented choice is accepted and a value outside them refused, and every key read is defined."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError, StackConfig
from components.config.backups import _FIELDS as BACKUP_FIELDS
from components.config.definitions import DEFINITIONS, OCI_DEFINITIONS, Definition, find
from components.config.services import _SERVICE_FIELDS
from dryrun.engine import PLACEHOLDER_CONFIG
from scripts import config_reference
from tests.config_load import AVAILABILITY_DOMAINS, load, setting

PROJECT = Path(__file__).resolve().parents[1]
# A service to stand for `<service>`: every field applies to it, and no other service needs it.
SERVICE = "pipelines"


def test_the_committed_page_is_what_the_script_prints() -> None:
    committed = (PROJECT / "docs" / "configuration.md").read_text()
    assert committed == config_reference.page(), (
        "docs/configuration.md is stale: run `python -m scripts.config_reference --write`"
    )


def _concrete(definition: Definition) -> str:
    return definition.key.replace("<service>", SERVICE)


# How each defaulted key shows in the validated config.
READ: dict[str, Callable[[StackConfig], Any]] = {
    "ai-swarm:profile": lambda c: c.profile.name,
    "ai-swarm:bootVolumeGb": lambda c: c.boot_volume_gb,
    "ai-swarm:dataVolumeGb": lambda c: c.data_volume_gb,
    # The default is an index: the domain named is that one of the tenancy's list.
    "ai-swarm:availabilityDomain": lambda c: str(
        AVAILABILITY_DOMAINS.index(c.availability_domain) + 1
    ),
    "ai-swarm:hostName": lambda c: c.host_name,
    "ai-swarm:vcnCidr": lambda c: str(c.vcn_cidr),
    "ai-swarm:subnetCidr": lambda c: str(c.subnet_cidr),
    "ai-swarm:exposeUis": lambda c: c.service_settings.expose_uis,
    "ai-swarm:services.<service>.enabled": lambda c: c.service_settings.enabled(SERVICE),
    "ai-swarm:backups.enabled": lambda c: c.backups.enabled,
    "ai-swarm:backups.keep": lambda c: c.backups.keep,
    "ai-swarm:backups.period": lambda c: c.backups.period,
    "ai-swarm:backups.type": lambda c: c.backups.backup_type,
    "ai-swarm:backups.dayOfWeek": lambda c: c.backups.day_of_week,
    "ai-swarm:backups.hourOfDay": lambda c: c.backups.hour_of_day,
    "ai-swarm:backups.offsiteDays": lambda c: c.backups.offsite.days,
    "ai-swarm:replica.enabled": lambda c: c.replica.enabled,
}
# The other keys a key's values need (dayOfMonth: a monthly schedule).
CONTEXT = {
    "ai-swarm:backups.dayOfMonth": setting("ai-swarm:backups.period", "ONE_MONTH"),
    # The replica's volume fits the free 200 GB only with a data volume of 100 GB or less.
    "ai-swarm:replica.enabled": setting("ai-swarm:dataVolumeGb", "100"),
}
READ_IN_CONTEXT = {"ai-swarm:backups.dayOfMonth": lambda c: c.backups.day_of_month}


@pytest.mark.parametrize(
    "definition",
    [d for d in (*OCI_DEFINITIONS, *DEFINITIONS) if d.default is not None],
    ids=lambda d: d.key,
)
def test_each_documented_default_is_what_load_config_yields(definition: Definition) -> None:
    context = CONTEXT.get(definition.key, {})
    read = READ.get(definition.key) or READ_IN_CONTEXT.get(definition.key)
    assert read is not None, f"no reader here for {definition.key}'s default: add one to READ"
    # The placeholders' config, which `load` starts from, sets none of these.
    assert definition.key not in PLACEHOLDER_CONFIG
    value = read(load(context))
    assert value == definition.default, definition.key


def test_the_defaults_described_in_words_hold() -> None:
    config = load()
    assert config.compartment_id == config.tenancy_id  # "the tenancy"
    assert config.host_size == config.profile.host  # "the profile's"
    off = load(setting("ai-swarm:backups.enabled", False))
    assert (config.backups.offsite.enabled, off.backups.offsite.enabled) == (True, False)
    assert config.service_settings.models == () and config.backups.offsite.age_recipient is None


@pytest.mark.parametrize("definition", [d for d in DEFINITIONS if d.choices], ids=lambda d: d.key)
def test_each_documented_choice_is_accepted_and_no_other(definition: Definition) -> None:
    context = CONTEXT.get(definition.key, {})
    for choice in definition.choices:
        load({**context, **setting(_concrete(definition), choice)})
    with pytest.raises(ConfigError) as refused:
        load(setting(_concrete(definition), "not-a-choice"))
    assert refused.value.key == _concrete(definition)


def _keys_read() -> set[str]:
    """Every top-level key the readers ask `pulumi.Config` for (the pattern
    tests/test_replacements.py uses too)."""
    read: set[str] = set()
    for path in (PROJECT / "components" / "config").glob("*.py"):
        for pair in re.findall(r'cfg, "([A-Za-z]+)"|cfg\.get\("([A-Za-z]+)"\)', path.read_text()):
            read |= {name for name in pair if name}
    return read


def test_every_key_the_program_reads_is_defined() -> None:
    read = _keys_read()
    assert {"hostName", "backups", "services"} <= read  # the pattern still finds the keys
    defined = {d.name.split(".")[0] for d in DEFINITIONS}
    assert read == defined


def test_every_field_of_a_structured_key_is_defined() -> None:
    defined = {d.name for d in DEFINITIONS}
    assert {f"backups.{field}" for field in BACKUP_FIELDS} == {
        name for name in defined if name.startswith("backups.")
    }
    assert {f"services.<service>.{field}" for field in _SERVICE_FIELDS} == {
        name for name in defined if name.startswith("services.")
    }


@pytest.mark.parametrize("definition", [*OCI_DEFINITIONS, *DEFINITIONS], ids=lambda d: d.key)
def test_each_example_names_its_key(definition: Definition) -> None:
    last = definition.example.splitlines()[-1]
    [named] = [word.strip("'") for word in last.split() if ":" in word][:1]
    assert find(named) == definition
