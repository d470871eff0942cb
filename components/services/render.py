"""Renderers for the files the services read, from typed values only; no Pulumi here.

The integration tests feed these same functions' output to the real daemons (redis-server,
redis-sentinel, PostgreSQL 15, OpenBao, the LiteLLM proxy), so a file is always one function of
plain data.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

# A directive file line: the directive's words, then its arguments (redis.conf, sentinel.conf,
# pg_hba.conf all share this shape).
Directive = tuple[str, Sequence[str]]

_BARE_WORD = re.compile(r"^[A-Za-z0-9_./:@*+=,-]+$")


def quote_word(word: str) -> str:
    """A word as redis.conf and pg_hba.conf read it: bare when safe, else double-quoted."""
    if _BARE_WORD.match(word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def render_directives(directives: Sequence[Directive]) -> str:
    """One directive per line, each argument quoted as needed."""
    lines = [" ".join([name, *(quote_word(arg) for arg in args)]) for name, args in directives]
    return "\n".join(lines) + "\n"


def render_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)


def render_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class DatabaseRole:
    """A login role that owns one database of the same purpose."""

    role: str
    database: str
    password: str


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    # standard_conforming_strings is on in every supported PostgreSQL: only quotes need doubling.
    return "'" + text.replace("'", "''") + "'"


def render_roles_sql(roles: Sequence[DatabaseRole]) -> str:
    """Idempotent psql script: each role exists with its password and owns its database.

    Written for psql (`\\gexec` creates a database only when missing, which plain SQL cannot do
    outside a transaction block), so it can be re-run by hand on a data directory that already
    exists, e.g. after a password was rotated.
    """
    statements = ["SET password_encryption = 'scram-sha-256';"]
    for entry in roles:
        role, database = quote_identifier(entry.role), quote_identifier(entry.database)
        statements += [
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {quote_literal(entry.role)}) "
            f"THEN CREATE ROLE {role} LOGIN; END IF; END $$;",
            f"ALTER ROLE {role} WITH LOGIN PASSWORD {quote_literal(entry.password)};",
            f"SELECT format('CREATE DATABASE %I OWNER %I', {quote_literal(entry.database)}, "
            f"{quote_literal(entry.role)}) WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = {quote_literal(entry.database)})\\gexec",
            f"REVOKE ALL ON DATABASE {database} FROM PUBLIC;",
            f"GRANT ALL ON DATABASE {database} TO {role};",
        ]
    return "\n".join(statements) + "\n"


def render_env_template(paths: Mapping[str, str], field: str) -> str:
    """A Vault Agent (consul-template) template for an environment file: one `NAME=value` line
    per variable, read from the `field` of the KV v2 secret at its API path. The Agent renders
    nothing until every secret exists, so the file is never partial."""
    return "".join(
        f'{{{{ with secret "{path}" }}}}{name}={{{{ .Data.data.{field} }}}}\n{{{{ end }}}}'
        for name, path in paths.items()
    )


def render_env_runner(
    env_file: str, program: str, variables: Sequence[str], wait_s: int, poll_s: int
) -> str:
    """A POSIX sh entrypoint: wait up to `wait_s` seconds for `env_file`, export its lines for
    `variables` only (read, never sourced: a value is data, not shell; a line for any other
    name, such as one a stray newline in a value would start, is skipped), run `program` with
    the script's arguments, and exit 75 once the file changes so that the container's restart
    policy starts the program again with the new values. TERM/INT are passed on to `program`."""
    file = shlex.quote(env_file)
    wanted = "|".join(f"{name}=*" for name in variables)
    missing = shlex.quote(f"{env_file} did not appear within {wait_s} s")
    skipped = shlex.quote(f"skipping a line of {env_file} that sets no expected variable")
    changed = shlex.quote(f"{env_file} changed: stopping so that a restart loads the new values")
    return f"""set -eu
waited=0
until [ -s {file} ]; do
  if [ "$waited" -ge {wait_s} ]; then
    echo {missing} >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
loaded="$(cksum < {file})"
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    {wanted}) export "$line" ;;
    *) echo {skipped} >&2 ;;
  esac
done < {file}
{shlex.quote(program)} "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 143' TERM INT
while kill -0 "$child" 2>/dev/null; do
  sleep {poll_s} &
  wait "$!" || true
  if [ "$(cksum < {file} 2>/dev/null || true)" != "$loaded" ]; then
    echo {changed} >&2
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" || true
    exit 75
  fi
done
wait "$child"
"""


def acl_user(name: str, password: str, rules: Sequence[str]) -> Directive:
    """A redis.conf / sentinel.conf `user` line: enabled, its password as the SHA-256 Redis
    compares (`#<hex>`, so the file holds no password a client could send), then its rules."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    return ("user", [name, "on", f"#{digest}", *rules])


def disabled_user(name: str) -> Directive:
    """A `user` line for a user nobody can be: off, no password, no keys, channels or commands."""
    return ("user", [name, "off", "resetpass", "resetkeys", "resetchannels", "-@all"])
