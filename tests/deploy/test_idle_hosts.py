"""`idle-check` over every instance of the stack: the Micro is judged without memory (Oracle's
rule has it for A1 only), and the exit code is the worst instance's."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from rich.console import Console

from components.sizing import E2_MICRO_SHAPE
from deploy import cli
from deploy.idle import Verdict, idle_report
from deploy.ports import InstanceFacts, MetricSeries
from deploy.replica import REPLICA_AT_RISK
from tests.deploy.fakes import FakeClock, OutputsStack
from tests.deploy.test_idle import INSTANCE_ID, NOW, POINTS, cloud, instance_body, week

REPLICA_ID = "ocid1.instance.oc1.eu-frankfurt-1.replicainstance"


def micro_body(bandwidth: float | None = 0.48) -> dict[str, Any]:
    body = instance_body(ocpus=1.0, memoryInGBs=1.0, networkingBandwidthInGbps=bandwidth, vcpus=2)
    body["shape"] = E2_MICRO_SHAPE
    body["shapeConfig"] = {k: v for k, v in body["shapeConfig"].items() if v is not None}
    return body


def test_a_busy_memory_does_not_clear_the_micro() -> None:
    oci_cloud, _monitoring = cloud(week(memory=80.0), micro_body())
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert [figure.name for figure in report.figures] == ["CPU", "network"]
    assert report.verdict is Verdict.AT_RISK
    # On A1 the same week is cleared by its memory.
    a1, _monitoring = cloud(week(memory=80.0))
    assert idle_report(a1, INSTANCE_ID, NOW).verdict is Verdict.NOT_AT_RISK


def test_the_micro_without_a_reported_bandwidth_is_taken_at_0_48_gbps() -> None:
    # 12 Mbit/s out is 2.5% of 0.48 Gbps (it would be 1.2% of A1's 1 Gbps per OCPU).
    oci_cloud, _monitoring = cloud(week(net_in=0.0, net_out=1_500_000.0), micro_body(None))
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert (report.bandwidth_gbps, report.bandwidth_reported) == (0.48, False)
    assert report.figures[1].percent == pytest.approx(2.5)


class TwoInstances:
    """A `Cloud` answering for the A1 (busy CPU) and the Micro (idle)."""

    def __init__(self) -> None:
        self.a1, _ = cloud(week(cpu=[60.0] * POINTS))
        self.micro, _ = cloud(week(), micro_body())

    def _for(self, instance_id: str) -> Any:
        return self.micro if instance_id == REPLICA_ID else self.a1

    def instance(self, instance_id: str) -> InstanceFacts:
        return self._for(instance_id).instance(INSTANCE_ID)  # type: ignore[no-any-return]

    def metric_series(
        self, compartment_id: str, query: str, start: datetime, end: datetime
    ) -> Sequence[MetricSeries]:
        which = self.micro if REPLICA_ID in query else self.a1
        return which.metric_series(compartment_id, query, start, end)


def _idle_check(monkeypatch: pytest.MonkeyPatch, outputs: Mapping[str, Any]) -> tuple[int, str]:
    monkeypatch.setattr(cli, "open_stack", lambda name, create: OutputsStack(outputs))
    monkeypatch.setattr(cli, "connect", lambda config: TwoInstances())
    monkeypatch.setattr(cli, "SystemClock", lambda: FakeClock(NOW))
    out = io.StringIO()
    code = cli.main(["idle-check"], console=Console(file=out, width=400, color_system=None))
    return code, out.getvalue()


REPLICA = {"instanceId": REPLICA_ID, "publicIp": "192.0.2.11", "privateIp": "10.0.1.11"}


def test_every_instance_gets_a_verdict_and_the_worst_sets_the_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, text = _idle_check(monkeypatch, {"instanceId": INSTANCE_ID, "replica": REPLICA})
    assert code == 1
    assert "A1 host: Oracle's idle rule" in text and "replica: Oracle's idle rule" in text
    verdicts = [line for line in text.splitlines() if "at risk" in line.lower()]
    assert verdicts[0].startswith("not at risk: CPU at or above 20%")
    assert verdicts[1].startswith("AT RISK: CPU, network all under 20%;")
    assert " ".join(REPLICA_AT_RISK.split()[:6]) in " ".join(text.split())


def test_without_a_replica_only_the_a1_is_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    code, text = _idle_check(monkeypatch, {"instanceId": INSTANCE_ID, "replica": None})
    assert code == 0
    assert "replica" not in text
