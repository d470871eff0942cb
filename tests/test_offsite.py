"""Off-site dumps: the bucket, its lifecycle, and an IAM grant read back by parsing its statements
the way OCI reads them, so that what the host may do is judged, not how the text looks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components import offsite
from dryrun.engine import PROJECT_DIR, ProgramRun, run_program
from tests.helpers import INSTANCE, user_data_text

COMPONENT = "ai-swarm:oci:OffsiteBackups"
BUCKET = "oci:ObjectStorage/bucket:Bucket"
LIFECYCLE = "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy"
REPLICATION = "oci:ObjectStorage/replicationPolicy:ReplicationPolicy"
DYNAMIC_GROUP = "oci:Identity/dynamicGroup:DynamicGroup"
POLICY = "oci:Identity/policy:Policy"
COMMAND = "command:remote:Command"
NAMESPACE_INVOKE = "oci:ObjectStorage/getNamespace:getNamespace"
TENANCY = "ocid1.tenancy.oc1..dryrunplaceholder"
# Every object permission OCI has (IAM policy reference, "Details for Object Storage").
OBJECT_PERMISSIONS = (
    "OBJECT_INSPECT",
    "OBJECT_READ",
    "OBJECT_CREATE",
    "OBJECT_OVERWRITE",
    "OBJECT_DELETE",
    "OBJECT_RESTORE",
    "OBJECT_UPDATE_TIER",
    "OBJECT_VERSION_DELETE",
)


def _with_backups(fields: dict[str, Any], **overrides: str) -> ProgramRun:
    return run_program(overrides={"backups": json.dumps(fields), **overrides})


# --- a small reader of OCI's policy statement grammar -------------------------------------------
#   Allow <subject> to <verb> <resource-type> in <location> [where <condition>]
#   condition: <variable> = '<value>' | all {<condition>, ...} | any {<condition>, ...}

_TOKEN = re.compile(r"\s*(?:(?P<quoted>'[^']*')|(?P<punct>[{},=])|(?P<word>[^\s{},=']+))")


def _tokens(text: str) -> list[str]:
    tokens, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        assert match, f"cannot read {text[at:]!r}"
        tokens.append(match.group(match.lastgroup or ""))
        at = match.end()
    return tokens


@dataclass(frozen=True)
class Statement:
    subject: tuple[str, ...]
    verb: str
    resource: str
    location: tuple[str, ...]
    condition: Any  # ("=", variable, value) | ("all" | "any", [conditions]) | None

    def allows(self, variables: dict[str, str]) -> bool:
        return self.condition is None or _holds(self.condition, variables)


def _holds(condition: Any, variables: dict[str, str]) -> bool:
    kind = condition[0]
    if kind == "=":
        return bool(variables.get(condition[1]) == condition[2])
    results = [_holds(inner, variables) for inner in condition[1]]
    return all(results) if kind == "all" else any(results)


def _condition(tokens: Iterator[str]) -> Any:
    first = next(tokens)
    if first.lower() in ("all", "any"):
        assert next(tokens) == "{"
        inner = [_condition(tokens)]
        while (separator := next(tokens)) == ",":
            inner.append(_condition(tokens))
        assert separator == "}"
        return (first.lower(), inner)
    assert next(tokens) == "="
    value = next(tokens)
    assert value.startswith("'"), value
    return ("=", first, value.strip("'"))


def parse_statement(text: str) -> Statement:
    words = _tokens(text)
    assert words[0].lower() == "allow", text
    to = [w.lower() for w in words].index("to")
    verb, resource, in_ = words[to + 1 : to + 4]
    assert in_.lower() == "in"
    rest = words[to + 4 :]
    lowered = [w.lower() for w in rest]
    where = lowered.index("where") if "where" in lowered else len(rest)
    condition = None
    if where < len(rest):
        tokens = iter(rest[where + 1 :])
        condition = _condition(tokens)
        assert next(tokens, None) is None, f"trailing text in {text!r}"
    return Statement(tuple(words[1:to]), verb, resource, tuple(rest[:where]), condition)


def test_the_reader_reads_oracle_s_own_example() -> None:
    # OCI IAM documentation, "Let users write objects to Object Storage buckets".
    parsed = parse_statement(
        "Allow group ObjectWriters to manage objects in compartment ABC where any "
        "{request.permission='OBJECT_CREATE', request.permission='OBJECT_INSPECT'}"
    )
    assert parsed.subject == ("group", "ObjectWriters")
    assert (parsed.verb, parsed.resource, parsed.location) == (
        "manage",
        "objects",
        ("compartment", "ABC"),
    )
    assert parsed.allows({"request.permission": "OBJECT_CREATE"})
    assert not parsed.allows({"request.permission": "OBJECT_DELETE"})


# --- what the host may do -----------------------------------------------------------------------


def _granted(statements: list[Statement], group: str, bucket: str) -> set[tuple[str, str]]:
    """(permission, bucket) pairs the group gets over every object permission and two buckets."""
    granted = set()
    for statement in statements:
        if statement.subject != ("dynamic-group", group):
            continue
        assert statement.verb == "manage" and statement.resource == "objects"
        for permission in OBJECT_PERMISSIONS:
            for name in (bucket, "someone-elses-bucket"):
                variables = {"request.permission": permission, "target.bucket.name": name}
                if statement.allows(variables):
                    granted.add((permission, name))
    return granted


def _statements(run: ProgramRun) -> list[Statement]:
    return [parse_statement(s) for p in run.of_type(POLICY) for s in p.inputs["statements"]]


def test_the_host_may_only_create_and_list_objects_in_its_bucket(
    always_free_run: ProgramRun,
) -> None:
    bucket = always_free_run.one(BUCKET).inputs["name"]
    group = always_free_run.one(DYNAMIC_GROUP)
    statements = _statements(always_free_run)
    assert _granted(statements, group.inputs["name"], bucket) == {
        ("OBJECT_CREATE", bucket),
        ("OBJECT_INSPECT", bucket),
    }
    # No other statement names the group, and the only other subject is the lifecycle service.
    subjects = {s.subject for s in statements}
    assert subjects == {
        ("dynamic-group", group.inputs["name"]),
        ("service", "objectstorage-eu-frankfurt-1"),
    }
    [service] = [s for s in statements if s.subject[0] == "service"]
    assert (service.verb, service.resource) == ("manage", "object-family")
    assert service.allows({"target.bucket.name": bucket})
    assert not service.allows({"target.bucket.name": "someone-elses-bucket"})
    assert {s.location for s in statements} == {("tenancy",)}


def test_the_dynamic_group_matches_exactly_the_instance(always_free_run: ProgramRun) -> None:
    group = always_free_run.one(DYNAMIC_GROUP)
    instance_id = always_free_run.ids[always_free_run.one(INSTANCE).urn]
    rule = _condition(iter(_tokens(group.inputs["matchingRule"])))
    assert rule == ("all", [("=", "instance.id", instance_id)])
    assert group.inputs["compartmentId"] == TENANCY


def test_iam_goes_to_the_tenancy_and_names_the_compartment() -> None:
    compartment = "ocid1.compartment.oc1..aaaaexample"
    run = run_program(overrides={"compartmentOcid": compartment})
    assert run.one(BUCKET).inputs["compartmentId"] == compartment
    for registration in (*run.of_type(POLICY), run.one(DYNAMIC_GROUP)):
        assert registration.inputs["compartmentId"] == TENANCY
    assert {s.location for s in _statements(run)} == {("compartment", "id", compartment)}
    [invoke] = [i for i in run.invokes if i.token == NAMESPACE_INVOKE]
    assert invoke.args["compartmentId"] == compartment


# --- the bucket ---------------------------------------------------------------------------------


def test_the_bucket_is_private_unversioned_and_unreplicated(always_free_run: ProgramRun) -> None:
    bucket = always_free_run.one(BUCKET)
    assert bucket.inputs["accessType"] == "NoPublicAccess"
    assert bucket.inputs["versioning"] == "Disabled"
    assert bucket.inputs["namespace"] == "dryrunnamespace"  # the mocked getNamespace's answer
    assert bucket.inputs["name"] == "ai-swarm-oracle-pg-dumps"
    assert always_free_run.of_type(REPLICATION) == []
    component = always_free_run.one(COMPONENT)
    children = [r for r in always_free_run.registrations if r.parent == component.urn]
    assert {r.type for r in children} == {BUCKET, LIFECYCLE, DYNAMIC_GROUP, POLICY, COMMAND}
    assert always_free_run.outputs["offsiteBucket"] == "ai-swarm-oracle-pg-dumps"


@pytest.mark.parametrize("days", [14, 3])
def test_objects_are_deleted_after_offsite_days(days: int) -> None:
    run = _with_backups({} if days == 14 else {"offsiteDays": days})
    lifecycle = run.one(LIFECYCLE)
    assert lifecycle.inputs["bucket"] == run.one(BUCKET).inputs["name"]
    [delete] = [r for r in lifecycle.inputs["rules"] if r["action"] == "DELETE"]
    assert delete == {
        "name": f"delete-after-{days}-days",
        "action": "DELETE",
        "target": "objects",
        "isEnabled": True,
        "timeAmount": str(days),
        "timeUnit": "DAYS",
    }
    [abort] = [r for r in lifecycle.inputs["rules"] if r["action"] == "ABORT"]
    assert (abort["target"], abort["timeAmount"], abort["isEnabled"]) == (
        "multipart-uploads",
        "1",
        True,
    )
    # OCI refuses a lifecycle policy the service may not carry out: the grant comes first.
    [service_policy] = [p for p in run.of_type(POLICY) if "service" in p.inputs["statements"][0]]
    assert service_policy.urn in lifecycle.dependencies


@pytest.mark.parametrize(
    "fields", [{"offsite": False}, {"enabled": False}], ids=["offsite off", "backups off"]
)
def test_off_means_no_bucket_and_no_iam(fields: dict[str, Any]) -> None:
    run = _with_backups(fields)
    for type_ in (COMPONENT, BUCKET, LIFECYCLE, DYNAMIC_GROUP, POLICY):
        assert run.of_type(type_) == []
    assert run.outputs["offsiteBucket"] is None


def test_backups_off_with_offsite_on_still_copies_the_dumps() -> None:
    run = _with_backups({"enabled": False, "offsite": True})
    assert run.one(BUCKET)


def test_without_postgres_there_is_nothing_to_copy() -> None:
    disabled = {name: {"enabled": False} for name in ("postgres", "litellm", "openWebui")}
    run = run_program(overrides={"services": json.dumps(disabled)})
    assert run.of_type(BUCKET) == [] and run.of_type(DYNAMIC_GROUP) == []


def test_the_cloud_config_is_the_same_with_and_without_offsite(always_free_run: ProgramRun) -> None:
    # A changed user_data would replace the instance: the uploader comes over SSH instead.
    without = _with_backups({"offsite": False})
    assert user_data_text(always_free_run) == user_data_text(without)
    assert (
        always_free_run.ids[always_free_run.one(INSTANCE).urn]
        == without.ids[without.one(INSTANCE).urn]
    )


def test_the_docs_name_what_the_program_makes() -> None:
    text = " ".join((Path(PROJECT_DIR) / "docs" / "operations.md").read_text().split())
    assert f"`oci-cli` {offsite.OCI_CLI_VERSION}, pinned, in `{offsite.OCI_CLI_VENV}`" in text
    assert f"`{offsite.UPLOAD_UNIT}.service`" in text
    assert f"rule `{offsite.matching_rule('<instanceId>')}`" in text
    assert "`OBJECT_CREATE` and `OBJECT_INSPECT` on this bucket only" in text
    reference = (Path(PROJECT_DIR) / "docs" / "configuration.md").read_text()
    row = "| whole number | `14` | a whole number from 1 to 365 |"
    assert f"[`ai-swarm:backups.offsiteDays`](#ai-swarmbackupsoffsitedays) {row}" in reference
