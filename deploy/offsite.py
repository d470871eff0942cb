"""The off-site dumps from the operator's side: their state in `status`, and `restore-dump`.

The operator's own OCI credentials read the bucket (the host may only add to it). `status` shows,
per database, the newest local dump and the newest off-site object with their ages, and whether
the host's last upload run failed. `restore-dump` lists the off-site dumps, downloads one,
decrypts it with the operator's `age` identity when it is encrypted, and restores it into the
running Postgres over SSH (docs/operations.md's restore, fed from here) or writes it to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import oci  # type: ignore[import-untyped]  # the SDK ships no type hints
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from components.backups import RESTORE_IN_CONTAINER, in_postgres
from components.offsite import ENCRYPTED_SUFFIX, OBJECT_PREFIX, UPLOAD_UNIT
from deploy.adapters import SshShell, SystemClock, identity_file, open_stack
from deploy.durations import format_duration
from deploy.oci_cloud import call_sdk, sdk_config
from deploy.ports import CloudError, OperatorError, RemoteShell, ShellResult
from deploy.status import LOGICAL_BACKUP_MAX_AGE, LOGICAL_BACKUPS, Check, Level, StatusReport

DUMP_NAME: Final = re.compile(r"^(?P<db>.+)-(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.dump$")
UPLOAD_RESULT: Final = f"systemctl show --property=Result --value {UPLOAD_UNIT}.service"
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class DumpFact:
    """One dump, local (`name` is the file name) or off-site (`name` is the object name)."""

    name: str
    size: int
    created: datetime

    @property
    def file_name(self) -> str:
        return self.name.removeprefix(OBJECT_PREFIX).removesuffix(ENCRYPTED_SUFFIX)

    @property
    def database(self) -> str | None:
        match = DUMP_NAME.match(self.file_name)
        return match["db"] if match else None

    @property
    def encrypted(self) -> bool:
        return self.name.endswith(ENCRYPTED_SUFFIX)


class DumpStore(Protocol):
    def objects(self) -> Sequence[DumpFact]:
        """The bucket's dumps (objects under the prefix), any order."""

    def download(self, name: str, target: Path) -> None: ...


class InputShell(Protocol):
    def run_input(self, command: str, stdin: Path) -> ShellResult:
        """Run `command` on the host with the local file `stdin` as its standard input."""


# ---------------------------------------------------------------------------------------------
# The bucket, through Oracle's SDK


class OciDumpStore:
    """`DumpStore` on an `ObjectStorageClient` (passed in, so tests hand a fake)."""

    def __init__(self, client: Any, namespace: str, bucket: str) -> None:
        self._client, self._namespace, self._bucket = client, namespace, bucket

    def objects(self) -> Sequence[DumpFact]:
        found: list[DumpFact] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"prefix": OBJECT_PREFIX, "fields": "name,size,timeCreated"}
            if start:
                kwargs["start"] = start
            listing = self._client.list_objects
            page = call_sdk("ListObjects", listing, self._namespace, self._bucket, **kwargs).data
            found += [DumpFact(o.name, int(o.size or 0), o.time_created) for o in page.objects]
            start = page.next_start_with
            if not start:
                return found

    def download(self, name: str, target: Path) -> None:
        response = call_sdk(
            "GetObject", self._client.get_object, self._namespace, self._bucket, name
        )
        with target.open("wb") as out:
            for chunk in response.data.raw.stream(_CHUNK, decode_content=False):
                out.write(chunk)


def connect_store(config: Mapping[str, str], outputs: Mapping[str, Any]) -> OciDumpStore:
    bucket, namespace = outputs.get("offsiteBucket"), outputs.get("offsiteNamespace")
    if not isinstance(bucket, str) or not isinstance(namespace, str):
        raise OperatorError(
            "the stack has no off-site bucket (outputs offsiteBucket, offsiteNamespace): "
            "ai-swarm:backups.offsite is off, Postgres is disabled, or the stack predates it"
        )
    client = oci.object_storage.ObjectStorageClient(sdk_config(config))
    return OciDumpStore(client, namespace, bucket)


# ---------------------------------------------------------------------------------------------
# status


def local_dumps(stat_lines: str) -> list[DumpFact]:
    """The dump files from `status`'s `stat` JSON lines (other files are not dumps)."""
    found = []
    for line in stat_lines.splitlines():
        try:
            entry = json.loads(line)
            name = str(entry["path"]).rsplit("/", 1)[-1]
            fact = DumpFact(
                name, int(entry["bytes"]), datetime.fromtimestamp(float(entry["mtime"]), tz=UTC)
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if fact.database:
            found.append(fact)
    return found


def offsite_checks(
    local: Iterable[DumpFact], remote: Iterable[DumpFact], upload_result: str, now: datetime
) -> list[Check]:
    """Per database: the newest local and off-site dump with their ages (fails when the
    off-site copy is missing or older than a nightly dump may be); then the last upload run."""
    newest: dict[str, dict[str, DumpFact]] = {}
    for where, facts in (("local", local), ("off-site", remote)):
        for fact in facts:
            if fact.database is None:
                continue
            kept = newest.setdefault(fact.database, {})
            if where not in kept or fact.created > kept[where].created:
                kept[where] = fact
    checks = []
    for database, kept in sorted(newest.items()):
        parts, level = [], Level.OK
        for where in ("local", "off-site"):
            newest_here = kept.get(where)
            if newest_here is None:
                parts.append(f"{where}: none")
                level = Level.FAIL if where == "off-site" else max(level, Level.WARN)
                continue
            age = now - newest_here.created.astimezone(now.tzinfo)
            if age > LOGICAL_BACKUP_MAX_AGE:
                level = Level.FAIL
            lock = " (age-encrypted)" if newest_here.encrypted else ""
            parts.append(f"{where}: {format_duration(age.total_seconds())} old{lock}")
        checks.append(Check(f"dumps of {database}", level, "; ".join(parts)))
    result = upload_result.strip() or "unknown"
    failed = result != "success"
    summary = (
        f"last run failed ({result}): `journalctl -u {UPLOAD_UNIT}` on the host says why"
        if failed
        else "last run succeeded"
    )
    checks.append(Check("off-site upload", Level.FAIL if failed else Level.OK, summary))
    return checks


def with_offsite(
    report: StatusReport, shell: RemoteShell, store: Callable[[], DumpStore], now: datetime
) -> StatusReport:
    """`report` with the off-site checks added (a WARN when the bucket cannot be read)."""
    try:
        remote = store().objects()
    except (CloudError, OperatorError) as error:
        unreadable = Check("off-site dumps", Level.WARN, f"unreadable: {error}")
        return replace(report, checks=(*report.checks, unreadable))
    listed = shell.run(LOGICAL_BACKUPS)
    result = shell.run(UPLOAD_RESULT)
    upload = result.stdout if result.exit_code == 0 else f"unreadable: {result.stderr.strip()}"
    checks = offsite_checks(local_dumps(listed.stdout), remote, upload, now)
    return replace(report, checks=report.checks + tuple(checks))


# ---------------------------------------------------------------------------------------------
# restore-dump


def add_restore_parser(
    commands: Any, stack_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    restore = commands.add_parser(
        "restore-dump",
        help="list the off-site pg_dumps; restore one into Postgres, or write it to a file",
        description="With your own OCI credentials: list the off-site dumps (no database "
        "given), or download the newest dump of DATABASE (or --object NAME), decrypt it with "
        "your age identity when it is encrypted, and restore it into the running Postgres "
        "over SSH (the database is dropped and made again from the dump) or write it to "
        "--to-file. Asks first unless --yes.",
    )
    stack_option(restore)
    restore.add_argument("database", nargs="?", help="the database whose newest dump to take")
    restore.add_argument("--object", metavar="NAME", help="this object instead of the newest")
    restore.add_argument("--identity", metavar="FILE", help="age identity file (for .age dumps)")
    restore.add_argument("--to-file", metavar="PATH", type=Path, help="write the dump here")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def choose(objects: Sequence[DumpFact], database: str | None, name: str | None) -> DumpFact:
    if name is not None:
        named = [o for o in objects if o.name == name]
        if not named:
            raise OperatorError(f"no off-site dump named {name!r}")
        return named[0]
    mine = [o for o in objects if o.database == database]
    if not mine:
        known = sorted({o.database for o in objects if o.database})
        raise OperatorError(
            f"no off-site dump of database {database!r}; dumps exist of: "
            f"{', '.join(known) or 'none'}"
        )
    return max(mine, key=lambda o: o.created)


def render_dumps(objects: Sequence[DumpFact], now: datetime, console: Console) -> None:
    table = Table(title="off-site dumps, newest first", title_justify="left")
    for column in ("database", "object", "size", "age"):
        table.add_column(column)
    for fact in sorted(objects, key=lambda o: o.created, reverse=True):
        age = format_duration((now - fact.created.astimezone(now.tzinfo)).total_seconds())
        table.add_row(
            escape(fact.database or "?"), escape(fact.name), f"{fact.size / 1024**2:.1f} MiB", age
        )
    console.print(table)


def decrypt(encrypted: Path, identity: Path, clear: Path) -> None:
    try:
        done = subprocess.run(
            ["age", "--decrypt", "-i", str(identity), "-o", str(clear), str(encrypted)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise OperatorError(
            "no `age` on PATH: install it (Debian/Ubuntu: apt install age)"
        ) from None
    if done.returncode != 0:
        raise OperatorError(f"age could not decrypt the dump: {done.stderr.strip()}")


def restore_dump(
    args: argparse.Namespace,
    *,
    store: DumpStore,
    shell: Callable[[], InputShell],
    console: Console,
    now: datetime,
    confirm: Callable[[str], bool],
) -> int:
    objects = store.objects()
    if args.database is None and args.object is None:
        render_dumps(objects, now, console)
        return 0
    chosen = choose(objects, args.database, args.object)
    if chosen.encrypted and not args.identity:
        raise OperatorError(f"{chosen.name} is age-encrypted: pass --identity FILE (your key)")
    target = (
        f"the file {args.to_file}"
        if args.to_file
        else f"database {chosen.database!r} on the host (it is dropped and made again)"
    )
    question = f"Restore {chosen.name} into {target}?"
    if not args.yes and not confirm(question):
        console.print("nothing restored")
        return 1
    with tempfile.TemporaryDirectory(prefix="ai-swarm-restore-") as private:
        downloaded = Path(private) / "download"
        store.download(chosen.name, downloaded)
        clear = downloaded
        if chosen.encrypted:
            clear = Path(private) / "clear.dump"
            decrypt(downloaded, Path(args.identity).expanduser(), clear)
        if args.to_file:
            shutil.copyfile(clear, args.to_file)
            args.to_file.chmod(0o600)
            console.print(f"wrote {chosen.file_name} to {escape(str(args.to_file))}")
            return 0
        done = shell().run_input(in_postgres(RESTORE_IN_CONTAINER, stdin=True), clear)
    if done.exit_code != 0:
        console.print(f"[red]restore failed[/] ({done.exit_code}): {escape(done.stderr.strip())}")
        return 1
    console.print(f"restored {chosen.file_name} into database {chosen.database!r}")
    return 0


def ask(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_restore(args: argparse.Namespace, console: Console) -> int:
    """`python -m deploy restore-dump`: the stack's bucket and host, the operator's keys."""
    stack = open_stack(args.stack, create=False)
    outputs, config = stack.outputs(), stack.config()
    store = connect_store(config, outputs)
    with contextlib.ExitStack() as opened:

        def host_shell() -> SshShell:
            host = require_output(outputs, "publicIp")
            instance_id = require_output(outputs, "instanceId")
            key = opened.enter_context(identity_file(config))
            control = opened.enter_context(tempfile.TemporaryDirectory(prefix="ai-swarm-"))
            shell = SshShell(host, instance_id, key, Path(control))
            opened.callback(shell.close)
            return shell

        try:
            return restore_dump(
                args,
                store=store,
                shell=host_shell,
                console=console,
                now=SystemClock().now(),
                confirm=ask,
            )
        except CloudError as error:
            console.print(f"[red]error[/]: {escape(str(error))}")
            return 1


def require_output(outputs: Mapping[str, Any], name: str) -> str:
    value = outputs.get(name)
    if not isinstance(value, str) or not value:
        raise OperatorError(f"the stack has no output {name!r}")
    return value
