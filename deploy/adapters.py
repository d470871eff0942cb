"""The real side effects behind `deploy.ports`: the Pulumi Automation API on this project
directory, the local `ssh`, and the system clock."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from pulumi import automation as auto

from components.services.base import HOST_LABEL
from components.ssh import SSH_USER, known_hosts_options
from deploy.plan import data_volume_domain, preview_from_events
from deploy.ports import OperatorError, Preview, PulumiUpError, ShellResult

PROJECT_DIR: Final = Path(__file__).resolve().parent.parent
POLICY_PACK_DIR: Final = PROJECT_DIR / "policies"
PULUMI_INSTALL_URL: Final = "https://www.pulumi.com/docs/install/"
CONTAINER_TYPE: Final = "docker:index/container:Container"
SSH_TIMEOUT_SECONDS: Final = 60


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# ---------------------------------------------------------------------------------------------
# Pulumi


def open_stack(stack_name: str, *, create: bool) -> AutomationStack:
    """The stack in a LocalWorkspace on this project (`create` for `up`: create_or_select).

    The Automation API runs `pulumi version` first; a missing CLI surfaces as FileNotFoundError.
    """
    opener = auto.create_or_select_stack if create else auto.select_stack
    try:
        stack = opener(stack_name=stack_name, work_dir=str(PROJECT_DIR))
    except FileNotFoundError:
        raise OperatorError(
            f"the Pulumi CLI is not installed (no `pulumi` on PATH): install it from "
            f"{PULUMI_INSTALL_URL}"
        ) from None
    except auto.InvalidVersionError as error:
        raise OperatorError(f"{error}; upgrade from {PULUMI_INSTALL_URL}") from None
    except auto.CommandError as error:
        raise OperatorError(f"cannot open stack {stack_name!r}: {_cli_error(error)}") from None
    return AutomationStack(stack)


class AutomationStack:
    """`DeployStack` and `StackReader` on an Automation API stack."""

    def __init__(self, stack: auto.Stack) -> None:
        self._stack = stack

    def preview(self, on_output: Callable[[str], None]) -> Preview:
        # The callback runs on the SDK's event-log thread: it only collects.
        events: list[auto.EngineEvent] = []
        try:
            result = self._stack.preview(
                policy_packs=[str(POLICY_PACK_DIR)],
                on_output=on_output,
                on_error=on_output,
                on_event=events.append,
                color="never",
            )
        except auto.CommandError as error:
            raise PulumiUpError(str(error)) from None
        except RuntimeError as error:  # the SDK's "summary event never found"
            raise PulumiUpError(f"pulumi preview: {error}") from None
        return preview_from_events(events, result.change_summary)

    def up(self, on_output: Callable[[str], None]) -> None:
        try:
            self._stack.up(
                policy_packs=[str(POLICY_PACK_DIR)],
                on_output=on_output,
                on_error=on_output,
                color="never",
            )
        except auto.CommandError as error:
            # str(CommandError) holds the exit code, stdout and stderr: provider errors and
            # policy violations are in stdout, the CLI's own error in stderr.
            raise PulumiUpError(str(error)) from None

    def data_volume_domain(self) -> str | None:
        deployment = self._read(self._stack.export_stack).deployment or {}
        return data_volume_domain(deployment)

    def get_config(self, key: str) -> str | None:
        entry = self._all_config().get(key)
        return None if entry is None else str(entry.value)

    def set_config(self, key: str, value: str) -> None:
        self._read(lambda: self._stack.set_config(key, auto.ConfigValue(value=value, secret=False)))

    def remove_config(self, key: str) -> None:
        self._read(lambda: self._stack.remove_config(key))

    def outputs(self) -> Mapping[str, Any]:
        return {name: output.value for name, output in self._read(self._stack.outputs).items()}

    def config(self) -> Mapping[str, str]:
        return {key: str(entry.value) for key, entry in self._all_config().items()}

    def deployed_containers(self, host: str | None = None) -> Sequence[str]:
        deployment = self._read(self._stack.export_stack).deployment or {}
        names: list[str] = []
        for resource in deployment.get("resources", []):
            if resource.get("type") != CONTAINER_TYPE:
                continue
            outputs = resource.get("outputs") or {}
            name = outputs.get("name")
            if host is not None and container_host(outputs) not in (host, None):
                continue
            if isinstance(name, str) and name:
                names.append(name.lstrip("/"))
        return names

    def _all_config(self) -> Mapping[str, auto.ConfigValue]:
        config: Mapping[str, auto.ConfigValue] = self._read(self._stack.get_all_config)
        return config

    @staticmethod
    def _read(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except auto.CommandError as error:
            raise OperatorError(f"pulumi failed: {_cli_error(error)}") from None


def container_host(outputs: Mapping[str, Any]) -> str | None:
    """The host key a container's `ai-swarm.host` label names (None when it has none)."""
    for label in outputs.get("labels") or []:
        if isinstance(label, Mapping) and label.get("label") == HOST_LABEL:
            value = label.get("value")
            return value if isinstance(value, str) else None
    return None


def _cli_error(error: Exception) -> str:
    """The CLI's last `error:` line. Only stderr is read: the stdout of a command such as
    `pulumi config --show-secrets` may hold secrets."""
    stderr = str(error).rpartition("\n stderr: ")[2]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    return (errors or lines or ["no error output"])[-1]


# ---------------------------------------------------------------------------------------------
# SSH


@contextmanager
def identity_file(config: Mapping[str, str]) -> Iterator[Path]:
    """The private key for `ssh -i`: `ai-swarm:sshIdentityFile` when set, else the secret
    `ai-swarm:sshPrivateKey` written to a 0600 file in a private directory for the duration."""
    named = config.get("ai-swarm:sshIdentityFile")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise OperatorError(f"ai-swarm:sshIdentityFile names {path}, which does not exist")
        yield path
        return
    key = config.get("ai-swarm:sshPrivateKey")
    if not key:
        raise OperatorError("neither ai-swarm:sshIdentityFile nor ai-swarm:sshPrivateKey is set")
    with tempfile.TemporaryDirectory(prefix="ai-swarm-ssh-") as directory:
        path = Path(directory) / "id"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key if key.endswith("\n") else key + "\n")
        yield path


class SshShell:
    """`RemoteShell` through the local `ssh`, one shared connection (ControlMaster) for all
    commands of a run."""

    def __init__(self, host: str, instance_id: str, key_file: Path, control_dir: Path) -> None:
        self._base = [
            "ssh",
            "-i", str(key_file),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            # The instance's own known-hosts file, as the program's Docker provider uses.
            *known_hosts_options(instance_id),
            "-o", "ConnectTimeout=15",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control_dir}/%C",
            "-o", "ControlPersist=30",
            f"{SSH_USER}@{host}",
        ]  # fmt: skip

    def run(self, command: str) -> ShellResult:
        try:
            done = subprocess.run(
                [*self._base, "--", command],
                capture_output=True,
                text=True,
                timeout=SSH_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError:
            raise OperatorError("no `ssh` client on PATH (install openssh-client)") from None
        except subprocess.TimeoutExpired:
            return ShellResult(255, "", f"timed out after {SSH_TIMEOUT_SECONDS}s: {command}")
        return ShellResult(done.returncode, done.stdout, done.stderr)

    def run_to_file(self, command: str, stdout: Path) -> ShellResult:
        """`command` with its standard output written to the local file `stdout` (no timeout:
        a dump takes as long as the database is large)."""
        with stdout.open("wb") as out:
            done = subprocess.run(
                [*self._base, "--", command], stdout=out, stderr=subprocess.PIPE, check=False
            )
        return ShellResult(done.returncode, "", done.stderr.decode(errors="replace"))

    def run_input(self, command: str, stdin: Path) -> ShellResult:
        """`command` with the local file `stdin` as its standard input (no timeout: a restore
        takes as long as the dump is large)."""
        with stdin.open("rb") as given:
            done = subprocess.run(
                [*self._base, "--", command], stdin=given, capture_output=True, check=False
            )
        return ShellResult(
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def close(self) -> None:
        """Stop the shared connection (it would otherwise linger for ControlPersist)."""
        subprocess.run(
            [*self._base[:-1], "-O", "exit", self._base[-1]], capture_output=True, check=False
        )

    def describe(self) -> str:
        return shlex.join([self._base[0], self._base[-1]])
