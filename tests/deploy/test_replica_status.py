"""`status`'s replication part: its queries run on two real PostgreSQL 15 servers (a primary
and a subscriber on loopback) through the hosts' shells, the levels, and the table a user
sees."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from components.config import A1_HOST_KEY, REPLICA_HOST_KEY
from components.replication import subscription_name
from deploy import cli
from deploy.cli import render_status
from deploy.ports import OperatorError
from deploy.replica import (
    LAG_WARN_BYTES,
    LAG_WARN_SECONDS,
    ReplicaStatus,
    SlotFact,
    SubscriptionFact,
    collect_replica_status,
    collect_replication,
    replication_rows,
)
from deploy.status import Level, StatusReport
from tests.deploy import pg_pair
from tests.deploy.fakes import OutputsStack

LITELLM, OPENWEBUI = subscription_name("litellm"), subscription_name("openwebui")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[pg_pair.Server, pg_pair.Server, Path]]:
    with pg_pair.server() as primary, pg_pair.server() as replica:
        for target in (primary, replica):
            pg_pair.make_schema(target)
        pg_pair.make_publisher(primary)
        primary.sql("INSERT INTO \"LiteLLM_SpendLogs\" (note) VALUES ('first')", "litellm")
        pg_pair.subscribe(replica, primary.daemon.port)
        pg_pair.wait_streaming(primary, replica)
        pg_pair.wait_for('SELECT count(*) FROM "LiteLLM_SpendLogs"', "1", replica, "litellm")
        yield primary, replica, tmp_path


def _collect(pair: tuple[pg_pair.Server, pg_pair.Server, Path]) -> ReplicaStatus:
    primary, replica, workdir = pair
    return collect_replica_status(
        pg_pair.primary_shell(workdir, primary), pg_pair.replica_shell(workdir, replica), []
    )


def _shown(part: ReplicaStatus) -> tuple[Level, str]:
    out = io.StringIO()
    level = render_status(
        StatusReport(containers=(), checks=()),
        Console(file=out, width=250, color_system=None),
        "oracle (192.0.2.10)",
        ("replica (192.0.2.11)", part),
    )
    return level, out.getvalue()


def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.lstrip("│ ").startswith(name))


def test_a_live_pair_is_healthy_and_shows_every_column(
    pair: tuple[pg_pair.Server, pg_pair.Server, Path],
) -> None:
    part = _collect(pair)
    assert part.replication.unreadable == ()
    rows = {row.name: row for row in part.replication.rows}
    assert set(rows) == {LITELLM, OPENWEBUI}
    for row in rows.values():
        assert row.level is Level.OK, row.problems
        assert row.subscription is not None and row.subscription.enabled
        assert row.slot is not None and row.slot.wal_status == "reserved"
        assert row.slot.active and (row.slot.retained_bytes or 0) > 0
    level, text = _shown(part)
    assert level is Level.OK and text.rstrip().endswith("healthy")
    line = _line(text, LITELLM)
    assert "litellm" in line and "enabled" in line and "0 apply, 0 sync" in line
    assert "reserved" in line and "ok" in line


def test_an_apply_error_disables_the_subscription_and_fails_status(
    pair: tuple[pg_pair.Server, pg_pair.Server, Path],
) -> None:
    primary, replica, _workdir = pair
    # A row the replica has but the primary does not: the primary's next insert of that key
    # is a unique violation on the subscriber, which disable_on_error turns off.
    replica.sql("INSERT INTO \"LiteLLM_SpendLogs\" (id, note) VALUES (2, 'only here')", "litellm")
    primary.sql("INSERT INTO \"LiteLLM_SpendLogs\" (note) VALUES ('second')", "litellm")
    pg_pair.wait_for(
        f"SELECT subenabled FROM pg_subscription WHERE subname = '{LITELLM}'",
        "f",
        replica,
        "litellm",
    )
    part = _collect(pair)
    rows = {row.name: row for row in part.replication.rows}
    broken = rows[LITELLM]
    assert broken.level is Level.FAIL
    assert broken.subscription is not None and broken.subscription.apply_errors == 1
    assert rows[OPENWEBUI].level is Level.OK
    level, text = _shown(part)
    assert level is Level.FAIL and text.rstrip().endswith("unhealthy")
    line = _line(text, LITELLM)
    assert "disabled" in line and "1 apply, 0 sync" in line and "fail" in line


def test_a_peer_slot_nobody_reads_is_listed_and_warns(
    pair: tuple[pg_pair.Server, pg_pair.Server, Path],
) -> None:
    primary, _replica, _workdir = pair
    primary.sql(
        "SELECT pg_create_logical_replication_slot('ai_swarm_peer_litellm', 'pgoutput')",
        "litellm",
    )
    part = _collect(pair)
    peer = next(row for row in part.replication.rows if row.name == "ai_swarm_peer_litellm")
    assert peer.subscription is None and peer.database == "litellm"
    assert peer.level is Level.WARN
    assert peer.problems == ("slot not in use (subscriber not connected)",)


def test_an_unreachable_replica_fails_with_the_reason(
    pair: tuple[pg_pair.Server, pg_pair.Server, Path],
) -> None:
    primary, _replica, workdir = pair
    nowhere = pg_pair.ContainerShell(workdir / "empty", {})  # no replica container there
    report = collect_replication(pg_pair.primary_shell(workdir, primary), nowhere)
    assert report.level is Level.FAIL
    assert report.unreadable == (
        "replica subscriptions: Error: No such container: postgres-replica",
    )


class TwoHostStack(OutputsStack):
    """The stack as `status` reads it: the A1 and the replica outputs, containers per host."""

    def __init__(self) -> None:
        replica = {"instanceId": "ocid1.instance.replica", "publicIp": "192.0.2.11"}
        super().__init__(
            {"publicIp": "192.0.2.10", "instanceId": "ocid1.instance.a1", "replica": replica}
        )
        self.hosts_asked: list[str | None] = []

    def deployed_containers(self, host: str | None = None) -> Sequence[str]:
        self.hosts_asked.append(host)
        return []


def test_the_status_command_shows_the_replication_of_the_stack_s_two_hosts(
    pair: tuple[pg_pair.Server, pg_pair.Server, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    primary, replica, workdir = pair
    shells = {
        ("192.0.2.10", "ocid1.instance.a1"): pg_pair.primary_shell(workdir, primary),
        ("192.0.2.11", "ocid1.instance.replica"): pg_pair.replica_shell(workdir, replica),
    }
    stack = TwoHostStack()

    @contextlib.contextmanager
    def key(config: Mapping[str, str]) -> Iterator[Path]:
        yield workdir / "id"

    def no_cloud(config: Mapping[str, str]) -> None:
        raise OperatorError("no OCI credentials in this test")

    monkeypatch.setattr(cli, "open_stack", lambda name, create: stack)
    monkeypatch.setattr(cli, "connect", no_cloud)
    monkeypatch.setattr(cli, "identity_file", key)
    monkeypatch.setattr(
        cli, "SshShell", lambda host, instance, key, control: shells[host, instance]
    )
    # The A1's own checks are status's older part (tests/deploy/test_status.py).
    monkeypatch.setattr(
        cli, "collect_status", lambda *args, **kwargs: StatusReport(containers=(), checks=())
    )
    out = io.StringIO()
    code = cli.main(["status"], console=Console(file=out, width=250, color_system=None))
    text = out.getvalue()
    assert code == 0, text
    assert stack.hosts_asked == [A1_HOST_KEY, REPLICA_HOST_KEY]
    assert "containers on replica (192.0.2.11)" in text
    assert "enabled" in _line(text, LITELLM) and "reserved" in _line(text, OPENWEBUI)
    replica.sql(f"ALTER SUBSCRIPTION {OPENWEBUI} DISABLE", "openwebui")
    out = io.StringIO()
    code = cli.main(["status"], console=Console(file=out, width=250, color_system=None))
    assert code == 1
    assert "disabled" in _line(out.getvalue(), OPENWEBUI)


# ---------------------------------------------------------------------------------------------
# Levels, on the facts the queries return


SUB = SubscriptionFact(LITELLM, "litellm", True, True, 0, 0, LITELLM)
SLOT = SlotFact(LITELLM, "litellm", True, "reserved", 1024, 0, None)
OTHER = [
    SubscriptionFact(OPENWEBUI, "openwebui", True, True, 0, 0, OPENWEBUI),
    SlotFact(OPENWEBUI, "openwebui", True, "reserved", 1024, 0, None),
]


def _row(sub: SubscriptionFact | None, slot: SlotFact | None) -> tuple[Level, tuple[str, ...]]:
    subs = [s for s in OTHER if isinstance(s, SubscriptionFact)] + ([sub] if sub else [])
    slots = [s for s in OTHER if isinstance(s, SlotFact)] + ([slot] if slot else [])
    row = next(r for r in replication_rows(subs, slots) if r.name == LITELLM)
    return row.level, row.problems


@pytest.mark.parametrize(
    ("sub", "slot", "level", "problem"),
    [
        (SUB, SLOT, Level.OK, None),
        (SUB, replace(SLOT, wal_status="extended"), Level.WARN, "slot WAL extended"),
        (SUB, replace(SLOT, wal_status="unreserved"), Level.FAIL, "slot WAL unreserved"),
        (SUB, replace(SLOT, wal_status="lost", retained_bytes=None), Level.FAIL, "slot WAL lost"),
        (SUB, replace(SLOT, lag_bytes=LAG_WARN_BYTES), Level.OK, None),
        (SUB, replace(SLOT, lag_bytes=LAG_WARN_BYTES + 1), Level.WARN, "16.0 MiB behind"),
        (SUB, replace(SLOT, lag_seconds=LAG_WARN_SECONDS + 1), Level.WARN, "replay 301 s behind"),
        (replace(SUB, apply_errors=2), SLOT, Level.WARN, "2 apply / 0 sync error(s)"),
        (replace(SUB, running=False), SLOT, Level.WARN, "no apply worker running"),
        (None, SLOT, Level.FAIL, "no subscription on the replica"),
        (SUB, None, Level.FAIL, "no slot on the primary"),
    ],
)
def test_levels(
    sub: SubscriptionFact | None, slot: SlotFact | None, level: Level, problem: str | None
) -> None:
    found_level, problems = _row(sub, slot)
    assert found_level is level
    assert problems == (() if problem is None else (problem,))
