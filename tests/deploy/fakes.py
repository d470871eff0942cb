"""Fakes for the seams in deploy.ports, and the recorded fixtures they replay."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import oci  # type: ignore[import-untyped]
from oci.base_client import BaseClient  # type: ignore[import-untyped]
from pulumi.automation import EngineEvent

from deploy.plan import preview_from_events
from deploy.ports import (
    CloudError,
    InstanceFacts,
    MetricSeries,
    Preview,
    PulumiUpError,
    ShellResult,
    VolumeBackupFact,
)

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text()


def recorded_events(name: str) -> list[EngineEvent]:
    """fixtures/preview/<name>.jsonl parsed as the Automation API parses its event log."""
    lines = fixture_text(f"preview/{name}.jsonl").splitlines()
    return [EngineEvent.from_json(json.loads(line)) for line in lines if line.strip()]


def recorded_preview(name: str) -> Preview:
    """The preview as `AutomationStack.preview` returns it for the recorded events (the counts
    are the summary event's, as `PreviewResult.change_summary` holds them)."""
    events = recorded_events(name)
    summaries = [event.summary_event for event in events if event.summary_event]
    return preview_from_events(events, summaries[0].resource_changes)


class FakeClock:
    """Time moves only when the code under test sleeps; every sleep is recorded."""

    def __init__(self, start: datetime = START) -> None:
        self._start = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.elapsed)

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.elapsed += seconds


@dataclass
class ScriptedStack:
    """A `DeployStack` whose `up` replays outcomes in order: a fixture name under
    fixtures/up/ fails with that text, None succeeds, and an exception class is raised. Every
    `preview` replays the recorded events fixtures/preview/<preview>.jsonl."""

    outcomes: list[str | type[BaseException] | None]
    values: dict[str, str] = field(default_factory=dict)  # the stack's config
    preview_name: str = "updates_only"
    volume_domain: str | None = None  # the data volume's domain in the state
    previews: int = 0
    # The availabilityDomain value each `up` ran with (None when unset).
    domains_tried: list[str | None] = field(default_factory=list)
    config_writes: list[tuple[str, str | None]] = field(default_factory=list)
    output_lines: list[str] = field(default_factory=list)

    def preview(self, on_output: Callable[[str], None]) -> Preview:
        self.previews += 1
        on_output("Previewing update (oracle):")
        return recorded_preview(self.preview_name)

    def data_volume_domain(self) -> str | None:
        return self.volume_domain

    def up(self, on_output: Callable[[str], None]) -> None:
        self.domains_tried.append(self.values.get("ai-swarm:availabilityDomain"))
        on_output("Updating (oracle):")
        if not self.outcomes:
            raise AssertionError("up() called more often than the script allows")
        outcome = self.outcomes.pop(0)
        if outcome is None:
            return
        if isinstance(outcome, type):
            raise outcome()
        raise PulumiUpError(fixture_text(f"up/{outcome}.txt"))

    def get_config(self, key: str) -> str | None:
        return self.values.get(key)

    def set_config(self, key: str, value: str) -> None:
        self.config_writes.append((key, value))
        self.values[key] = value

    def remove_config(self, key: str) -> None:
        self.config_writes.append((key, None))
        self.values.pop(key, None)

    def config(self) -> Mapping[str, str]:
        return dict(self.values)


class SequenceJitter:
    """Returns `a + fraction * (b - a)` for each fraction in turn, recording the bounds."""

    def __init__(self, fractions: Iterable[float]) -> None:
        self._fractions = list(fractions)
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        fraction = self._fractions.pop(0) if self._fractions else 0.5
        return a + fraction * (b - a)


class FakeShell:
    """Answers commands from a table of exact command text to result; records the calls."""

    def __init__(self, answers: Mapping[str, ShellResult]) -> None:
        self._answers = dict(answers)
        self.commands: list[str] = []

    def run(self, command: str) -> ShellResult:
        self.commands.append(command)
        if command not in self._answers:
            raise AssertionError(f"unexpected command: {command}")
        return self._answers[command]


# ---------------------------------------------------------------------------------------------
# The OCI SDK's own model objects, from REST bodies


_DUMMY_SDK_CONFIG = {
    "user": "ocid1.user.oc1..aaaaaaaauser",
    "tenancy": "ocid1.tenancy.oc1..aaaaaaaatenancy",
    "fingerprint": ":".join(["00"] * 16),
    "key_content": "not used: nothing is signed",
    "region": "eu-frankfurt-1",
}


def sdk_models(body: Any, response_type: str, service: str = "core") -> Any:
    """What the SDK would return for this REST response body (its own deserializer)."""
    return _deserialized(json.dumps(body), response_type, service)


@functools.lru_cache(maxsize=64)
def _deserialized(body: str, response_type: str, service: str) -> Any:
    # Cached: a week of datapoints takes the SDK a while, and many tests share bodies. The
    # models are only read, never changed.
    return _deserializer(service).deserialize_response_data(body.encode(), response_type)


@functools.cache
def _deserializer(service: str) -> Any:
    """An SDK client that is never used to send anything: only its deserializer is."""
    endpoint_service, type_mapping = {
        "core": ("compute", oci.core.models.core_type_mapping),
        "identity": ("identity", oci.identity.models.identity_type_mapping),
        "monitoring": ("monitoring", oci.monitoring.models.monitoring_type_mapping),
        "object_storage": (
            "object_storage",
            oci.object_storage.models.object_storage_type_mapping,
        ),
    }[service]
    return BaseClient(
        endpoint_service, _DUMMY_SDK_CONFIG, signer=object(), type_mapping=type_mapping
    )


def monitoring_body(
    metric: str, values: Sequence[float], end: datetime, step: timedelta = timedelta(minutes=5)
) -> list[dict[str, Any]]:
    """A SummarizeMetricsData body with one stream of `values`, the last at `end`."""
    first = end - step * (len(values) - 1)
    return [
        {
            "namespace": "oci_computeagent",
            "compartmentId": "ocid1.compartment.oc1..aaaaaaaacompartment",
            "name": metric,
            "dimensions": {"resourceId": "ocid1.instance.oc1.eu-frankfurt-1.anthelinstance"},
            "metadata": {},
            "aggregatedDatapoints": [
                {
                    "timestamp": (first + step * i).isoformat().replace("+00:00", "Z"),
                    "value": value,
                }
                for i, value in enumerate(values)
            ],
        }
    ]


@dataclass
class Response:
    data: Any


class FakeMonitoringClient:
    """`summarize_metrics_data` answering by the metric name at the start of the MQL query."""

    def __init__(self, bodies: Mapping[str, list[dict[str, Any]]]) -> None:
        self._bodies = dict(bodies)
        self.requests: list[tuple[str, Any]] = []

    def summarize_metrics_data(self, compartment_id: str, details: Any) -> Response:
        self.requests.append((compartment_id, details))
        metric = details.query.split("[", 1)[0]
        return Response(sdk_models(self._bodies.get(metric, []), "list[MetricData]", "monitoring"))


class FakeCloud:
    """A `Cloud` with canned answers (for status and idle tests that do not exercise the SDK)."""

    def __init__(
        self,
        instance: InstanceFacts | None = None,
        backups: Sequence[VolumeBackupFact] = (),
        series: Mapping[str, Sequence[MetricSeries]] | None = None,
        error: CloudError | None = None,
    ) -> None:
        self._instance = instance
        self._backups = backups
        self._series = dict(series or {})
        self._error = error

    def availability_domains(self) -> Sequence[str]:
        return ["AD-1", "AD-2", "AD-3"]

    def instance(self, instance_id: str) -> InstanceFacts:
        assert self._instance is not None
        return self._instance

    def volume_backups(self, volume_id: str) -> Sequence[VolumeBackupFact]:
        if self._error:
            raise self._error
        return self._backups

    def metric_series(
        self, compartment_id: str, query: str, start: datetime, end: datetime
    ) -> Sequence[MetricSeries]:
        return self._series.get(query.split("[", 1)[0], [])


class OutputsStack:
    """A stack that has only outputs (the replica verbs read nothing else)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def outputs(self) -> Mapping[str, Any]:
        return self._outputs

    def config(self) -> Mapping[str, str]:
        return {}

    def deployed_containers(self, host: str | None = None) -> Sequence[str]:
        return []
