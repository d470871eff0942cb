"""The off-site dumps from the operator's side: the bucket read through the SDK's own models,
`status`'s per-database lines, and `restore-dump` with real `age` and a recorded SSH seam."""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import oci  # type: ignore[import-untyped]
import pytest
from rich.console import Console

from components.backups import RESTORE_IN_CONTAINER, in_postgres
from deploy.adapters import PULUMI_INSTALL_URL
from deploy.cli import build_parser
from deploy.offsite import (
    UPLOAD_RESULT,
    DumpFact,
    OciDumpStore,
    offsite_checks,
    restore_dump,
    with_offsite,
)
from deploy.ports import CloudError, OperatorError, ShellResult
from deploy.status import LOGICAL_BACKUPS, Level, StatusReport
from tests.deploy.fakes import FakeShell, Response, fixture_text, sdk_models
from tests.deploy.test_cli import run_module

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CLEAR = b"PGDMP\x01\x0e\x00 a stand-in for a custom-format dump"


def _page(name: str) -> Any:
    body = json.loads(fixture_text(f"offsite/{name}.json"))
    return sdk_models(body, "ListObjects", "object_storage")


class FakeObjectStorage:
    """`list_objects` answering two recorded pages; `get_object` streaming given bytes."""

    def __init__(self, content: bytes = b"", error: Exception | None = None) -> None:
        self.list_calls: list[tuple[str, str, dict[str, Any]]] = []
        self.got: list[str] = []
        self._content, self._error = content, error

    def list_objects(self, namespace: str, bucket: str, **kwargs: Any) -> Response:
        if self._error:
            raise self._error
        self.list_calls.append((namespace, bucket, kwargs))
        return Response(_page("list_objects_page2" if "start" in kwargs else "list_objects_page1"))

    def get_object(self, namespace: str, bucket: str, name: str) -> Response:
        self.got.append(name)
        content = self._content

        class Raw:
            def stream(self, size: int, decode_content: bool) -> Any:
                assert decode_content is False  # the bytes as stored
                return (content[i : i + 7] for i in range(0, len(content), 7))

        return Response(type("Body", (), {"raw": Raw()})())


# --- the bucket through the SDK -----------------------------------------------------------------


def test_the_store_lists_every_page_of_dumps() -> None:
    client = FakeObjectStorage()
    objects = OciDumpStore(client, "ns", "bucket").objects()
    assert [o.name for o in objects] == [
        "postgres/litellm-20261205T030004Z.dump.age",
        "postgres/litellm-20261206T030003Z.dump.age",
        "postgres/openwebui-20261206T030003Z.dump.age",
        "postgres/postgres-20261203T030002Z.dump",
    ]
    assert [c[2].get("start") for c in client.list_calls] == [
        None,
        "postgres/openwebui-20261206T030003Z.dump.age",
    ]
    assert {c[2]["prefix"] for c in client.list_calls} == {"postgres/"}
    assert objects[0].size == 48213 and objects[0].database == "litellm"
    assert objects[0].encrypted and not objects[3].encrypted
    assert objects[1].created == datetime(2026, 12, 6, 3, 1, 9, 118000, tzinfo=UTC)


def test_a_service_error_is_a_cloud_error() -> None:
    refused = oci.exceptions.ServiceError(404, "BucketNotFound", {}, "Either the bucket ...")
    with pytest.raises(CloudError, match="ListObjects: 404 BucketNotFound"):
        OciDumpStore(FakeObjectStorage(error=refused), "ns", "bucket").objects()


def test_download_writes_the_stored_bytes(tmp_path: Path) -> None:
    client = FakeObjectStorage(CLEAR)
    OciDumpStore(client, "ns", "bucket").download("postgres/x.dump", tmp_path / "x")
    assert (tmp_path / "x").read_bytes() == CLEAR
    assert client.got == ["postgres/x.dump"]


# --- status -------------------------------------------------------------------------------------


def _fact(name: str, hours_old: float) -> DumpFact:
    return DumpFact(name, 1000, NOW - timedelta(hours=hours_old))


def test_each_database_shows_its_newest_local_and_off_site_dump() -> None:
    local = [_fact("litellm-20261206T030003Z.dump", 9), _fact("litellm-20261205T030004Z.dump", 33)]
    remote = [_fact("postgres/litellm-20261206T030003Z.dump.age", 8.9)]
    [litellm, upload] = offsite_checks(local, remote, "success\n", NOW)
    assert (litellm.subject, litellm.level) == ("dumps of litellm", Level.OK)
    assert litellm.summary == "local: 9h00m old; off-site: 8h54m old (age-encrypted)"
    assert (upload.level, upload.summary) == (Level.OK, "last run succeeded")


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ([], "off-site: none"),
        ([_fact("postgres/openwebui-20261203T030003Z.dump", 81)], "off-site: 81h00m old"),
    ],
    ids=["missing off-site", "stale off-site"],
)
def test_a_missing_or_stale_off_site_copy_fails(remote: list[DumpFact], expected: str) -> None:
    local = [_fact("openwebui-20261206T030003Z.dump", 9)]
    [check, _upload] = offsite_checks(local, remote, "success", NOW)
    assert check.level is Level.FAIL
    assert expected in check.summary


def test_a_failed_upload_run_fails_and_says_where_to_look() -> None:
    [upload] = offsite_checks([], [], "exit-code\n", NOW)
    assert upload.level is Level.FAIL
    assert "last run failed (exit-code)" in upload.summary
    assert "journalctl -u ai-swarm-offsite-upload" in upload.summary


def test_status_reads_the_host_and_the_bucket() -> None:
    stat_line = {"path": "/mnt/data/backups/postgres/litellm-20261206T030003Z.dump", "bytes": 9}
    stat_line["mtime"] = int((NOW - timedelta(hours=2)).timestamp())
    shell = FakeShell(
        {
            LOGICAL_BACKUPS: ShellResult(0, json.dumps(stat_line) + "\n", ""),
            UPLOAD_RESULT: ShellResult(0, "success\n", ""),
        }
    )
    store = OciDumpStore(FakeObjectStorage(), "ns", "bucket")
    report = with_offsite(StatusReport((), ()), shell, lambda: store, NOW)
    by_subject = {c.subject: c for c in report.checks}
    assert (
        by_subject["dumps of litellm"].summary
        == "local: 2h00m old; off-site: 8h58m old (age-encrypted)"
    )
    # Dumps only off-site (the local ones pruned) still show, with no local copy: a warning.
    assert by_subject["dumps of postgres"].level is Level.FAIL  # 3 days old off-site
    assert by_subject["dumps of openwebui"].summary.startswith("local: none")
    assert report.exit_code == 1


def test_an_unreadable_bucket_is_a_warning_not_a_crash() -> None:
    def refused() -> OciDumpStore:
        raise CloudError("ListObjects: 404 NotAuthorizedOrNotFound")

    report = with_offsite(StatusReport((), ()), FakeShell({}), refused, NOW)
    [check] = report.checks
    assert check.level is Level.WARN and "NotAuthorizedOrNotFound" in check.summary


# --- restore-dump -------------------------------------------------------------------------------


class ListedStore:
    def __init__(self, objects: Sequence[DumpFact], content: bytes) -> None:
        self._objects, self._content = objects, content
        self.downloads: list[str] = []

    def objects(self) -> Sequence[DumpFact]:
        return self._objects

    def download(self, name: str, target: Path) -> None:
        self.downloads.append(name)
        target.write_bytes(self._content)


class RecordingShell:
    def __init__(self, exit_code: int = 0) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self._exit_code = exit_code

    def run_input(self, command: str, stdin: Path) -> ShellResult:
        self.calls.append((command, stdin.read_bytes()))
        return ShellResult(self._exit_code, "", "pg_restore: error: stand-in" * self._exit_code)


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """An operator identity, and CLEAR encrypted to it by the real `age`."""
    key = tmp_path_factory.mktemp("age") / "operator.key"
    made = subprocess.run(
        ["age-keygen", "-o", str(key)], capture_output=True, text=True, check=True
    )
    recipient = made.stderr.strip().rsplit(" ", 1)[1]
    sealed = subprocess.run(["age", "-r", recipient], input=CLEAR, capture_output=True, check=True)
    return key, sealed.stdout


OBJECTS = [
    _fact("postgres/litellm-20261205T030004Z.dump.age", 33),
    _fact("postgres/litellm-20261206T030003Z.dump.age", 9),
    _fact("postgres/openwebui-20261206T030003Z.dump", 9),
]


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["restore-dump", *argv])


def _restore(
    args: argparse.Namespace, store: ListedStore, shell: RecordingShell, answer: bool = True
) -> tuple[int, str, list[str]]:
    console = Console(record=True, width=200)
    asked: list[str] = []

    def confirm(question: str) -> bool:
        asked.append(question)
        return answer

    code = restore_dump(
        args, store=store, shell=lambda: shell, console=console, now=NOW, confirm=confirm
    )
    return code, console.export_text(), asked


def test_without_a_database_it_lists_the_dumps_newest_first() -> None:
    store, shell = ListedStore(OBJECTS, b""), RecordingShell()
    code, text, asked = _restore(_args(), store, shell)
    assert code == 0 and asked == [] and store.downloads == [] and shell.calls == []
    lines = [line for line in text.splitlines() if "postgres/" in line]
    assert "litellm-20261206" in lines[0] and "litellm-20261205" in lines[-1]


def test_the_newest_dump_is_decrypted_and_fed_to_the_readme_restore(
    age_key: tuple[Path, bytes],
) -> None:
    key, sealed = age_key
    store, shell = ListedStore(OBJECTS, sealed), RecordingShell()
    code, text, asked = _restore(_args("litellm", "--identity", str(key)), store, shell)
    assert code == 0, text
    assert store.downloads == ["postgres/litellm-20261206T030003Z.dump.age"]
    assert asked == [
        "Restore postgres/litellm-20261206T030003Z.dump.age into database 'litellm' on the "
        "host (it is dropped and made again)?"
    ]
    assert shell.calls == [(in_postgres(RESTORE_IN_CONTAINER, stdin=True), CLEAR)]
    assert "restored litellm-20261206T030003Z.dump into database 'litellm'" in text


def test_a_no_at_the_prompt_restores_nothing(age_key: tuple[Path, bytes]) -> None:
    store, shell = ListedStore(OBJECTS, age_key[1]), RecordingShell()
    code, _text, asked = _restore(
        _args("litellm", "--identity", str(age_key[0])), store, shell, answer=False
    )
    assert code == 1 and len(asked) == 1
    assert store.downloads == [] and shell.calls == []


def test_yes_skips_the_prompt_and_to_file_writes_the_clear_dump(
    age_key: tuple[Path, bytes], tmp_path: Path
) -> None:
    key, sealed = age_key
    target = tmp_path / "litellm.dump"
    store, shell = ListedStore(OBJECTS, sealed), RecordingShell()
    args = _args(
        "--object", OBJECTS[0].name, "--identity", str(key), "--to-file", str(target), "--yes"
    )
    code, _text, asked = _restore(args, store, shell)
    assert code == 0 and asked == [] and shell.calls == []
    assert store.downloads == [OBJECTS[0].name]
    assert target.read_bytes() == CLEAR
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_unencrypted_dump_needs_no_identity(tmp_path: Path) -> None:
    store, shell = ListedStore(OBJECTS, CLEAR), RecordingShell()
    code, _text, _asked = _restore(_args("openwebui", "--yes"), store, shell)
    assert code == 0
    assert shell.calls == [(in_postgres(RESTORE_IN_CONTAINER, stdin=True), CLEAR)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["litellm", "--yes"], "is age-encrypted: pass --identity FILE"),
        (
            ["redis", "--yes"],
            "no off-site dump of database 'redis'; dumps exist of: litellm, openwebui",
        ),
        (
            ["--object", "postgres/nope.dump", "--yes"],
            "no off-site dump named 'postgres/nope.dump'",
        ),
    ],
)
def test_refusals_name_the_fix(argv: list[str], message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        _restore(_args(*argv), ListedStore(OBJECTS, b""), RecordingShell())


def test_the_wrong_identity_cannot_decrypt(age_key: tuple[Path, bytes], tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], capture_output=True, check=True)
    shell = RecordingShell()
    with pytest.raises(OperatorError, match="age could not decrypt the dump"):
        _restore(
            _args("litellm", "--identity", str(other), "--yes"),
            ListedStore(OBJECTS, age_key[1]),
            shell,
        )
    assert shell.calls == []


def test_a_failed_restore_exits_1_with_pg_restore_s_words() -> None:
    shell = RecordingShell(exit_code=1)
    code, text, _asked = _restore(_args("openwebui", "--yes"), ListedStore(OBJECTS, CLEAR), shell)
    assert code == 1 and "pg_restore: error: stand-in" in text


def test_the_verb_has_help_and_needs_the_pulumi_cli(tmp_path: Path) -> None:
    shown = run_module("restore-dump", "--help", tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for flag in ("--identity", "--to-file", "--yes", "--object"):
        assert flag in shown.stdout
    done = run_module("restore-dump", "litellm", "--yes", tmp_path=tmp_path)
    assert done.returncode == 1
    assert PULUMI_INSTALL_URL in done.stdout and "Traceback" not in done.stderr
