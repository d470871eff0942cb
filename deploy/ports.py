"""The seams: every side effect the commands have, as a small Protocol, and the plain data that
crosses it. The real implementations are in `deploy.adapters` (Pulumi, SSH, clock) and
`deploy.oci_cloud` (Oracle's SDK); the tests pass fakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class PulumiUpError(Exception):
    """`pulumi up` or `pulumi preview` failed; `output` is what the CLI printed (stdout and
    stderr)."""

    def __init__(self, output: str) -> None:
        super().__init__("pulumi up failed")
        self.output = output


class OperatorError(Exception):
    """A condition the operator must fix (missing CLI, output, credentials); printed as is."""


@dataclass(frozen=True)
class PlannedStep:
    """One step of a preview, as the engine's `resourcePreEvent` names it."""

    op: str  # the engine's StepOp: same, create, update, replace, delete-replaced, ...
    urn: str
    type: str
    keys: tuple[str, ...] = ()  # the inputs that force a replacement


@dataclass(frozen=True)
class Preview:
    steps: tuple[PlannedStep, ...]
    counts: Mapping[str, int]  # the engine's summary: steps per operation


class DeployStack(Protocol):
    """The stack as `python -m deploy up` drives it."""

    def preview(self, on_output: Callable[[str], None]) -> Preview:
        """Run `pulumi preview` with the policy pack; raise `PulumiUpError` when it fails."""

    def up(self, on_output: Callable[[str], None]) -> None:
        """Run `pulumi up` with the policy pack; raise `PulumiUpError` when it fails."""

    def data_volume_domain(self) -> str | None:
        """The availability domain of the data volume in the stack's state, None when none."""

    def get_config(self, key: str) -> str | None:
        """A plain (not secret) config value, or None when the key is not set."""

    def set_config(self, key: str, value: str) -> None: ...

    def remove_config(self, key: str) -> None: ...


class StackReader(Protocol):
    """What `status` and `idle-check` read from the stack."""

    def outputs(self) -> Mapping[str, Any]:
        """Output values by name (secrets included: never print them)."""

    def config(self) -> Mapping[str, str]:
        """Every config value by full key (`oci:region`), secrets decrypted: never print them."""

    def deployed_containers(self, host: str | None = None) -> Sequence[str]:
        """Names of the Docker containers the stack's state holds: of the host with this key
        when given (a container without a host label counts for every host)."""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward (deadlines, waits)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC (ages, windows, printed times)."""

    def sleep(self, seconds: float) -> None: ...


class Jitter(Protocol):
    """A source of uniform random numbers; `random.Random` is one."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str


class RemoteShell(Protocol):
    def run(self, command: str) -> ShellResult:
        """Run a shell command on the host as the SSH user."""


@dataclass(frozen=True)
class InstanceFacts:
    compartment_id: str
    ocpus: float
    networking_bandwidth_gbps: float | None  # as OCI reports it for this instance
    shape: str = ""  # e.g. VM.Standard.A1.Flex; empty when not known


@dataclass(frozen=True)
class VolumeBackupFact:
    display_name: str
    created: datetime
    lifecycle_state: str
    kind: str  # FULL or INCREMENTAL


@dataclass(frozen=True)
class MetricPoint:
    timestamp: datetime
    value: float


@dataclass(frozen=True)
class MetricSeries:
    name: str
    dimensions: Mapping[str, str]
    points: tuple[MetricPoint, ...]


class CloudError(Exception):
    """An OCI API call failed; the message names the call, status and code, never a key."""


class Cloud(Protocol):
    """The OCI reads the commands need."""

    def availability_domains(self) -> Sequence[str]: ...

    def instance(self, instance_id: str) -> InstanceFacts: ...

    def volume_backups(self, volume_id: str) -> Sequence[VolumeBackupFact]:
        """The volume's backups, newest first."""

    def metric_series(
        self, compartment_id: str, query: str, start: datetime, end: datetime
    ) -> Sequence[MetricSeries]:
        """`SummarizeMetricsData` in namespace `oci_computeagent` for an MQL query."""
