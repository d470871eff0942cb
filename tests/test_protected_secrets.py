"""Generated values that data depends on survive `pulumi destroy --exclude-protected`.

Each generator the program registers is listed here with whether it is protected and why; a new
generator fails until it is listed. What `destroy --exclude-protected` keeps is computed from the
registrations the way Pulumi computes it, and checked against docs/operations.md.
"""

from __future__ import annotations

import re
from pathlib import Path

from dryrun.engine import ProgramRun, Registration

OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
GENERATOR_PACKAGES = ("random:", "tls:")

_ROLE = "a role in the data directory on the volume keeps the password it was made with"
_RENDERED = "rendered into the containers that use it, made again with a new value"
# name: (protected, why)
GENERATED: dict[str, tuple[bool, str]] = {
    "postgres-superuser": (True, _ROLE + " (the roles script and pg_dump log in as it)"),
    "postgres-litellm": (True, _ROLE),
    "postgres-openwebui": (True, _ROLE),
    "litellm-salt-key": (True, "encrypts the provider credentials LiteLLM stores in Postgres"),
    "openWebui-secret-key": (
        True,
        "signs Open WebUI's sessions and is the default key of what it encrypts in its database",
    ),
    "vault-seal-key-1": (True, "wraps Vault's root key, stored in raft on the volume"),
    "host-ssh-host-key": (
        True,
        "the host key every SSH client pins; it is in the instance's user data, so a new one "
        "replaces the instance",
    ),
    "litellm-master-key": (
        False,
        "stored nowhere (the salt key encrypts): written to Vault again, and Open WebUI's key "
        "registered again with it",
    ),
    "openWebui-litellm-key": (False, "registered with LiteLLM again by its command's update"),
    "pipelines-api-key": (False, _RENDERED + "; Pipelines stores nothing under it"),
    "vault-agent-secret-id": (False, "written into Vault again by the approle step's update"),
    **{
        f"redis-{user}-user": (
            False,
            _RENDERED + " (redis.conf, sentinel.conf); the append-only file holds no ACL",
        )
        for user in ("sentinel", "healthcheck", "litellm", "openwebui")
    },
}


def _generators(run: ProgramRun) -> dict[str, Registration]:
    return {r.name: r for r in run.registrations if r.type.startswith(GENERATOR_PACKAGES)}


def test_every_generated_value_is_listed_with_its_protection(always_free_run: ProgramRun) -> None:
    generators = _generators(always_free_run)
    assert set(generators) == set(GENERATED), "list a new generator above, with why"
    wrong = {
        name: registration.protect
        for name, registration in generators.items()
        if registration.protect != GENERATED[name][0]
    }
    assert wrong == {}, "protect flags differ from the list"


def test_no_setting_regenerates_a_protected_value(always_free_run: ProgramRun) -> None:
    """No keepers: a protected value is made once, whatever the settings become."""
    for name, registration in _generators(always_free_run).items():
        if GENERATED[name][0]:
            assert "keepers" not in registration.inputs, name


def kept_by_destroy_exclude_protected(run: ProgramRun) -> set[str]:
    """The URNs `pulumi destroy --exclude-protected` leaves: each protected resource and its
    transitive dependencies (provider, parent, dependencies, property dependencies).

    pulumi/pulumi pkg/cmd/pulumi/operations/destroy.go, getProtectedExcludes: "Parents of
    protected resources will be transitively protected", by pkg/resource/graph/
    dependency_graph.go TransitiveDependenciesOf."""
    by_urn = run.by_urn()
    kept: set[str] = set()
    pending = [r.urn for r in run.registrations if r.protect]
    while pending:
        urn = pending.pop()
        if urn in kept:
            continue
        kept.add(urn)
        registration = by_urn.get(urn)
        if registration is None:  # the stack, or a default provider
            continue
        pending += [registration.parent, *registration.dependencies]
        pending += [u for urns in registration.property_dependencies.values() for u in urns]
        if registration.provider:
            pending.append(registration.provider.rsplit("::", 1)[0])
    return kept


def _documented_kept() -> set[str]:
    text = OPERATIONS.read_text()
    section = text[text.index("### Destroying without losing the data volume") :]
    [kept_line] = re.findall(r"^- \*\*Kept\*\*.*?(?=^- \*\*)", section, re.M | re.S)
    return set(re.findall(r"`([a-zA-Z0-9]+-[a-zA-Z0-9-]+)`", kept_line))  # resource names


def test_destroy_exclude_protected_keeps_the_data_and_its_secrets(
    always_free_run: ProgramRun,
) -> None:
    kept = kept_by_destroy_exclude_protected(always_free_run)
    names = {r.name for r in always_free_run.registrations if r.urn in kept and r.custom}
    assert "host-data" in names
    assert {name for name, (protected, _) in GENERATED.items() if protected} <= names
    assert names == _documented_kept(), (
        "docs/operations.md's list of what destroy --exclude-protected keeps"
    )
