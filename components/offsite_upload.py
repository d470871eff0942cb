#!/usr/bin/python3
"""ai-swarm-offsite-upload: copy every pg_dump file not yet off-site to the Object Storage bucket.

Installed by Pulumi (ai-swarm, components/offsite.py) on the host, run by its systemd unit after
every run of the dump service, as root, with the standard library and the OCI CLI only.

- The bucket is listed once; a dump whose object (`<prefix><file>`, or `<prefix><file>.age`
  when encrypted) is there already is skipped, so no object is ever written twice.
- With OFFSITE_AGE_RECIPIENT set, each dump is encrypted with `age -r` into the staging
  directory first and the encrypted copy is sent.
- A dump older than OFFSITE_DAYS is not sent: the bucket's lifecycle rule has deleted its copy,
  or would at once.
- The bucket never passes OFFSITE_LIMIT_BYTES: a dump that would take it past is refused.
- Nothing local is ever deleted. Any refusal or failed upload is logged and makes the run fail;
  the dump is tried again at the next run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from calendar import timegm
from pathlib import Path

DUMP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*-(?P<stamp>[0-9]{8}T[0-9]{6}Z)\.dump$")
ENCRYPTED_SUFFIX = ".age"
DAY_SECONDS = 86_400


class UploadError(Exception):
    """One dump could not be sent; the others still are."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def oci(*args: str) -> str:
    """The OCI CLI as the instance: no key on the host, the instance principal's own identity."""
    done = subprocess.run(
        ["oci", "--auth", "instance_principal", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-3:]
        raise UploadError(f"oci {' '.join(args[:3])} failed: {' '.join(detail)}")
    return done.stdout


def bucket_objects(namespace: str, bucket: str) -> dict[str, int]:
    """Every object's size by name. An empty bucket prints `{"prefixes": []}`, no `data`."""
    out = oci(
        "os", "object", "list", "--namespace-name", namespace, "--bucket-name", bucket,
        "--all", "--fields", "name,size",
    )  # fmt: skip
    listed = json.loads(out) if out.strip() else {}
    return {item["name"]: int(item.get("size") or 0) for item in listed.get("data", [])}


def stamp_seconds(stamp: str) -> int:
    return timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))


def pending_dumps(dump_dir: Path, sent: set[str], prefix: str, days: int) -> list[Path]:
    """Dumps not yet off-site and young enough to be kept there, newest first."""
    now = time.time()
    found = []
    for path in dump_dir.iterdir():
        match = DUMP_NAME.match(path.name)
        if not match or prefix + path.name in sent:
            continue
        if now - stamp_seconds(match["stamp"]) > days * DAY_SECONDS:
            log(f"{path.name}: older than the {days} days the bucket keeps; not sent")
            continue
        found.append((match["stamp"], path))
    return [path for _stamp, path in sorted(found, reverse=True)]


def encrypted(dump: Path, recipient: str, staging: Path) -> Path:
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = staging / (dump.name + ENCRYPTED_SUFFIX)
    done = subprocess.run(
        ["age", "--encrypt", "--recipient", recipient, "--output", str(target), str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        raise UploadError(f"{dump.name}: age failed: {done.stderr.strip()}")
    return target


def main() -> int:
    env = os.environ
    namespace, bucket = env["OFFSITE_NAMESPACE"], env["OFFSITE_BUCKET"]
    prefix, days = env["OFFSITE_PREFIX"], int(env["OFFSITE_DAYS"])
    limit = int(env["OFFSITE_LIMIT_BYTES"])
    dump_dir, staging = Path(env["OFFSITE_DUMP_DIR"]), Path(env["OFFSITE_STAGING_DIR"])
    recipient = env.get("OFFSITE_AGE_RECIPIENT", "")
    if not dump_dir.is_dir():
        log(f"{dump_dir} does not exist: nothing to send")
        return 0
    try:
        objects = bucket_objects(namespace, bucket)
    except (UploadError, ValueError, KeyError) as error:
        log(f"cannot list bucket {bucket}: {error}; nothing sent, tried again next run")
        return 1
    used = sum(objects.values())
    sent = {name.removesuffix(ENCRYPTED_SUFFIX) for name in objects}
    failed = False
    for dump in pending_dumps(dump_dir, sent, prefix, days):
        source = dump
        try:
            if recipient:
                source = encrypted(dump, recipient, staging)
            name = prefix + source.name
            size = source.stat().st_size
            if used + size > limit:
                raise UploadError(
                    f"{name}: refused: the bucket holds {used} bytes and would hold "
                    f"{used + size}, over the {limit} bytes of the free allowance"
                )
            oci(
                "os", "object", "put", "--namespace-name", namespace, "--bucket-name", bucket,
                "--name", name, "--file", str(source), "--force",
            )  # fmt: skip
            used += size
            log(f"{name}: sent, {size} bytes; the bucket holds {used} bytes")
        except UploadError as error:
            log(f"{error}; the local dump is kept and tried again next run")
            failed = True
        finally:
            if source != dump:
                source.unlink(missing_ok=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
