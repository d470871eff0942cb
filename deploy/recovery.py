"""`python -m deploy seed-primary`: after the A1's data is lost and `pulumi up` made a new,
empty primary, seed it from the replica and subscribe the replica to it again.

The new primary's applications created their schema when they first started (their own
migrations, with their migration bookkeeping), so only the data travels: per database a
data-only `pg_dump` on the replica (the migration bookkeeping tables left out: they are not
replicated, and the new primary's own rows are right for its schema), copied over SSH through a
private temporary file here, restored on the primary in one transaction with triggers off, then
every sequence set at or above both the replica's value and the largest value its column holds
(sequences are not replicated: the replica's own values are stale). The applications are
stopped meanwhile, so nothing writes between the check, the restore and the new subscription.

The replica's old subscriptions point at slots that died with the old primary: each is disabled
and detached from its slot (`slot_name = NONE`), a new one is made with the old one's connection
(read and used inside psql on the replica, never printed or copied here) and `copy_data = false`
(the primary was seeded from the replica), then the old one is dropped and the new one takes its
name. The new subscription's slot exists before the applications start again, so every write
on the new primary reaches the replica.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from rich.console import Console
from rich.markup import escape

from components.backups import AS_SUPERUSER
from components.config import A1_HOST_KEY
from components.replication import (
    DATABASES,
    MIGRATION_TABLES,
    PUBLICATION,
    REPLICA_CONTAINER,
    subscription_name,
)
from components.services.catalog import CATALOG
from components.services.render import quote_identifier, quote_literal
from deploy.adapters import SshShell, identity_file, open_stack
from deploy.offsite import ask, require_output
from deploy.ports import OperatorError, ShellResult
from deploy.replica import PRIMARY_CONTAINER, in_container, psql, query_json, replica_output
from deploy.status import StatusReadError

# The containers that write to Postgres: stopped while it is seeded.
WRITERS: Final = tuple(
    container
    for entry in CATALOG.values()
    if PRIMARY_CONTAINER in entry.needs
    for container in entry.containers
)
_NEW_SUFFIX: Final = "_seeded"


class DataShell(Protocol):
    """A host's shell that can also stream a file in or out (a dump)."""

    def run(self, command: str) -> ShellResult: ...

    def run_input(self, command: str, stdin: Path) -> ShellResult:
        """`command` with the local file `stdin` as its standard input."""

    def run_to_file(self, command: str, stdout: Path) -> ShellResult:
        """`command` with its standard output written to the local file `stdout` (the result's
        stdout is empty)."""


# ---------------------------------------------------------------------------------------------
# SQL


def _name_list(names: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(quote_literal(name) for name in names) + "]::text[]"


# The application tables of a database (every ordinary or partitioned table outside the system
# schemas, but the migration bookkeeping), as `schema.table`.
_TABLES: Final = f"""SELECT n.nspname, c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    AND c.relname <> ALL ({_name_list(MIGRATION_TABLES)})"""

# {table: rows} of every application table (a row count per table needs a query per table:
# query_to_xml runs each one inside this single statement).
TABLE_ROWS_SQL: Final = f"""SELECT coalesce(json_object_agg(t.name, t.rows), '{{}}') FROM (
  SELECT format('%I.%I', nspname, relname) AS name,
         (xpath('/row/n/text()', query_to_xml(
            format('SELECT count(*) AS n FROM %I.%I', nspname, relname), false, true, ''
         )))[1]::text::bigint AS rows
  FROM ({_TABLES}) tables
) t"""

# Empties every application table in one statement (foreign keys among them allow it).
TRUNCATE_SQL: Final = f"""DO $$
DECLARE tables text;
BEGIN
  SELECT string_agg(format('%I.%I', nspname, relname), ', ') INTO tables FROM ({_TABLES}) t;
  IF tables IS NOT NULL THEN EXECUTE 'TRUNCATE ' || tables; END IF;
END $$;"""

# Each sequence a column owns (serial or identity) moved up to the column's largest value when
# it is behind; then every sequence's value as {sequence: last_value}.
SEQUENCES_SQL: Final = """DO $$
DECLARE s record; top bigint; last bigint; called boolean;
BEGIN
  FOR s IN
    SELECT seq.oid::regclass AS seq, format('%I.%I', n.nspname, t.relname) AS tab,
           quote_ident(a.attname) AS col
    FROM pg_class seq
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = seq.oid
      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    WHERE seq.relkind = 'S'
  LOOP
    EXECUTE format('SELECT max(%s)::bigint FROM %s', s.col, s.tab) INTO top;
    EXECUTE format('SELECT last_value, is_called FROM %s', s.seq) INTO last, called;
    IF top IS NOT NULL AND (top > last OR (top = last AND NOT called)) THEN
      PERFORM setval(s.seq, top, true);
    END IF;
  END LOOP;
END $$;
SELECT coalesce(json_object_agg(format('%I.%I', schemaname, sequencename),
                                coalesce(last_value, 0)), '{}')
FROM pg_sequences;"""

# Slots on the new primary with the replica's subscription names: the replica already follows it.
SLOTS_SQL: Final = (
    "SELECT coalesce(json_agg(slot_name ORDER BY slot_name), '[]') FROM pg_replication_slots "
    f"WHERE slot_name = ANY ({_name_list([subscription_name(db) for db in DATABASES])})"
)

PUBLICATION_SQL: Final = (
    "SELECT coalesce(json_agg(format('%I.%I', schemaname, tablename)), '[]') "
    f"FROM pg_publication_tables WHERE pubname = {quote_literal(PUBLICATION)}"
)


def dump_command(database: str) -> str:
    """The replica's data-only dump of `database` (custom format) on standard output."""
    excluded = " ".join(shlex.quote(f"--exclude-table-data={table}") for table in MIGRATION_TABLES)
    return in_container(
        REPLICA_CONTAINER,
        f'{AS_SUPERUSER} pg_dump --username="$POSTGRES_USER" --dbname={shlex.quote(database)} '
        f"--format=custom --data-only --no-publications --no-subscriptions {excluded}",
    )


def restore_command(database: str) -> str:
    """The primary's restore of a data-only dump read from standard input: the application
    tables emptied and the dump's rows loaded in one transaction, triggers (foreign keys) off
    while it loads."""
    to_sql = f"{AS_SUPERUSER} pg_restore --data-only --disable-triggers --file=-"
    apply = f"{psql(TRUNCATE_SQL, database)} --single-transaction --file=-"
    return in_container(PRIMARY_CONTAINER, f"{to_sql} | {apply}", stdin=True)


def resubscribe_script(database: str) -> str:
    """The psql script, run in `database` on the replica, that gives it a new subscription to
    the new primary (module docstring). Re-runnable after a failed CREATE: the old subscription
    then stays, disabled and detached."""
    name = subscription_name(database)
    new = name + _NEW_SUFFIX
    old_id, new_id = quote_identifier(name), quote_identifier(new)
    flag = "CASE WHEN {} THEN 'true' ELSE 'false' END"
    return f"""\\set ON_ERROR_STOP 1
SELECT subconninfo AS conninfo,
       {flag.format("subdisableonerr")} AS disable_on_error,
       {flag.format("subbinary")} AS binary_transfer,
       {flag.format("substream")} AS streaming
FROM pg_subscription
WHERE subname = {quote_literal(name)} AND subdbid = (SELECT oid FROM pg_database
                                                    WHERE datname = current_database())
\\gset
ALTER SUBSCRIPTION {old_id} DISABLE;
ALTER SUBSCRIPTION {old_id} SET (slot_name = NONE);
CREATE SUBSCRIPTION {new_id} CONNECTION :'conninfo' PUBLICATION {quote_identifier(PUBLICATION)}
  WITH (copy_data = false, slot_name = {quote_literal(name)},
        disable_on_error = :disable_on_error, binary = :binary_transfer,
        streaming = :streaming);
DROP SUBSCRIPTION {old_id};
ALTER SUBSCRIPTION {new_id} RENAME TO {old_id};
"""


# ---------------------------------------------------------------------------------------------
# The verb


def add_seed_parser(commands: Any, stack_option: Callable[[argparse.ArgumentParser], None]) -> None:
    seed = commands.add_parser(
        "seed-primary",
        help="after the A1's data was lost: seed the new, empty primary from the replica",
        description="For a new, empty primary (`pulumi up` after the A1's data volume was "
        "lost) whose applications have started once (they create their schema): stop the "
        "applications, copy each database's rows from the replica (pg_dump over SSH, "
        "pg_restore), set every sequence at or above the replica's values, give the replica "
        "a new subscription to the new primary (the old slots died with the old primary), "
        "and start the applications again. Refuses when the primary holds rows, unless "
        "--overwrite. Prints its plan and asks first unless --yes. Exit 0 seeded, 1 not.",
    )
    stack_option(seed)
    seed.add_argument(
        "--overwrite",
        action="store_true",
        help="replace rows the primary already holds (they are deleted)",
    )
    seed.add_argument("--yes", action="store_true", help="do not ask for confirmation")


@dataclass(frozen=True)
class SeedHosts:
    primary: DataShell
    replica: DataShell
    writers: tuple[str, ...]  # the writing containers deployed on the primary


def _table_rows(shell: DataShell, container: str, database: str, where: str) -> dict[str, int]:
    try:
        rows = query_json_object(shell, container, TABLE_ROWS_SQL, database, where)
    except StatusReadError as error:
        raise OperatorError(str(error)) from None
    return {str(name): int(count) for name, count in rows.items()}


def query_json_object(
    shell: DataShell, container: str, sql: str, database: str, what: str
) -> dict[str, Any]:
    done = shell.run(in_container(container, psql(sql, database)))
    if done.exit_code != 0:
        raise StatusReadError(f"{what}: {_last_line(done.stderr, done.exit_code)}")
    try:
        parsed = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as error:
        raise StatusReadError(f"{what}: psql did not print JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise StatusReadError(f"{what}: not a JSON object")
    return parsed


def _last_line(stderr: str, exit_code: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {exit_code}"


def _occupied(primary: Mapping[str, Mapping[str, int]]) -> list[str]:
    return [
        f"{database}: {table} ({rows} rows)"
        for database, tables in primary.items()
        for table, rows in sorted(tables.items())
        if rows
    ]


def seed_primary(
    args: argparse.Namespace,
    hosts: SeedHosts,
    console: Console,
    confirm: Callable[[str], bool],
) -> int:
    """The verb on its two shells (module docstring); 0 seeded, 1 not."""
    replica_rows = {
        db: _table_rows(hosts.replica, REPLICA_CONTAINER, db, f"replica {db}") for db in DATABASES
    }
    primary_rows = {
        db: _table_rows(hosts.primary, PRIMARY_CONTAINER, db, f"primary {db}") for db in DATABASES
    }
    missing = [
        f"{db}.{table}"
        for db in DATABASES
        for table in sorted(set(replica_rows[db]) - set(primary_rows[db]))
    ]
    if missing:
        raise OperatorError(
            f"the new primary lacks table(s) the replica has: {', '.join(missing)}; let the "
            "applications start once on it (they create their schema; `pulumi up` starts them) "
            "with the same image tags as before, then run seed-primary again"
        )
    for db in DATABASES:
        _check_publication(hosts.primary, db)
    _check_not_followed(hosts.primary)
    occupied = _occupied(primary_rows)
    if occupied and not args.overwrite:
        raise OperatorError(
            "the primary is not empty: " + "; ".join(occupied) + ". Pass --overwrite to "
            "replace these rows with the replica's"
        )
    console.print("seed-primary will:")
    writers = " ".join(hosts.writers) or "(none deployed)"
    console.print(f"  1. stop {escape(writers)} on the primary")
    for db in DATABASES:
        total = sum(replica_rows[db].values())
        console.print(
            f"  2. copy {total} rows in {len(replica_rows[db])} tables of {db} from the replica"
            + (" (replacing the primary's rows)" if occupied else "")
        )
    console.print("  3. set each sequence at or above the largest value its column holds")
    console.print(
        "  4. on the replica: replace the subscriptions "
        + ", ".join(subscription_name(db) for db in DATABASES)
        + " with new ones to the new primary (no initial copy)"
    )
    console.print(f"  5. start {escape(writers)} again")
    if not args.yes and not confirm("Seed the primary from the replica?"):
        console.print("nothing changed")
        return 1
    _docker(hosts.primary, "stop", hosts.writers)
    try:
        if not args.overwrite:
            again = {db: _table_rows(hosts.primary, PRIMARY_CONTAINER, db, db) for db in DATABASES}
            if _occupied(again):
                raise OperatorError(
                    "rows appeared on the primary before its applications stopped: "
                    + "; ".join(_occupied(again))
                    + ". Nothing copied; run again with --overwrite to replace them"
                )
        for db in DATABASES:
            _copy(hosts, db, console)
        for db in DATABASES:
            _resubscribe(hosts.replica, db, console)
    finally:
        _docker(hosts.primary, "start", hosts.writers)
    console.print(f"started {escape(writers)}; the replica follows the new primary")
    console.print(
        "run `python -m deploy up` again: the replica's reconcile then records the new primary "
        "as the one it follows (docs/replica.md, Disaster recovery, step 4)"
    )
    return 0


def _docker(shell: DataShell, verb: str, containers: Sequence[str]) -> None:
    if not containers:
        return
    done = shell.run(f"docker {verb} {' '.join(shlex.quote(c) for c in containers)}")
    if done.exit_code != 0:
        raise OperatorError(
            f"docker {verb} on the primary failed: {_last_line(done.stderr, done.exit_code)}"
        )


def _copy(hosts: SeedHosts, database: str, console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="ai-swarm-seed-") as private:
        dump = Path(private) / f"{database}.dump"
        dumped = hosts.replica.run_to_file(dump_command(database), dump)
        if dumped.exit_code != 0:
            raise OperatorError(
                f"pg_dump of {database} on the replica failed: "
                f"{_last_line(dumped.stderr, dumped.exit_code)}"
            )
        restored = hosts.primary.run_input(restore_command(database), dump)
    if restored.exit_code != 0:
        raise OperatorError(
            f"restoring {database} on the primary failed (nothing of it was kept): "
            f"{_last_line(restored.stderr, restored.exit_code)}"
        )
    try:
        values = query_json_object(
            hosts.primary, PRIMARY_CONTAINER, SEQUENCES_SQL, database, f"sequences of {database}"
        )
    except StatusReadError as error:
        raise OperatorError(str(error)) from None
    console.print(
        f"{database}: rows restored; sequences "
        + (
            ", ".join(f"{escape(name)} = {value}" for name, value in sorted(values.items()))
            or "none"
        )
    )


def _check_publication(primary: DataShell, database: str) -> None:
    """The new subscription takes the publication's tables as they are when it is made: the
    publication must exist on the new primary first."""
    try:
        tables = query_json(
            primary, PRIMARY_CONTAINER, PUBLICATION_SQL, f"publication in {database}", database
        )
    except StatusReadError as error:
        raise OperatorError(str(error)) from None
    if not tables:
        raise OperatorError(
            f"the new primary has no publication {PUBLICATION} with tables in {database}: "
            "run `python -m deploy up` (it reconciles the publication), then seed-primary again"
        )


def _check_not_followed(primary: DataShell) -> None:
    """A slot of the replica's on the new primary means its reconcile already subscribed it
    there, which empties the replica's tables and copies the new primary's: nothing is left to
    seed from the replica then."""
    try:
        slots = query_json(primary, PRIMARY_CONTAINER, SLOTS_SQL, "slots on the primary")
    except StatusReadError as error:
        raise OperatorError(str(error)) from None
    if slots:
        raise OperatorError(
            f"the replica already subscribes to the new primary (slots {', '.join(slots)}): its "
            "reconcile ran against it and copied the new primary's tables, so the replica no "
            "longer holds the old data. Restore from the off-site dumps instead "
            "(restore-dump); docs/replica.md, Disaster recovery, step 1 keeps this from happening"
        )


def _resubscribe(replica: DataShell, database: str, console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="ai-swarm-seed-") as private:
        script = Path(private) / "resubscribe.sql"
        script.write_text(resubscribe_script(database))
        command = in_container(REPLICA_CONTAINER, psql(None, database), stdin=True)
        done = replica.run_input(command, script)
    if done.exit_code != 0:
        raise OperatorError(
            f"the replica's new subscription for {database} failed: "
            f"{_last_line(done.stderr, done.exit_code)} (the old one is kept, disabled; fix "
            "the cause and run seed-primary again with --overwrite)"
        )
    console.print(f"{database}: the replica subscribes to the new primary")


def run_seed(args: argparse.Namespace, console: Console) -> int:
    """`python -m deploy seed-primary`: the stack's primary and replica over SSH."""
    stack = open_stack(args.stack, create=False)
    outputs, config = stack.outputs(), stack.config()
    host = require_output(outputs, "publicIp")
    instance_id = require_output(outputs, "instanceId")
    replica = replica_output(outputs)
    if replica is None:
        raise OperatorError(
            "this stack has no replica (ai-swarm:replica.enabled is false): nothing to seed from"
        )
    deployed = stack.deployed_containers(A1_HOST_KEY)
    writers = tuple(container for container in WRITERS if container in deployed)
    with identity_file(config) as key, tempfile.TemporaryDirectory(prefix="ai-swarm-") as control:
        primary = SshShell(host, instance_id, key, Path(control))
        micro = SshShell(str(replica["publicIp"]), str(replica["instanceId"]), key, Path(control))
        try:
            return seed_primary(args, SeedHosts(primary, micro, writers), console, ask)
        finally:
            micro.close()
            primary.close()
