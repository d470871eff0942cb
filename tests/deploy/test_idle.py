"""`idle-check` against Monitoring responses turned into the SDK's own models, including the
percentile math at the 20% boundary."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from deploy.cli import render_idle
from deploy.idle import (
    CPU_PERCENTILE,
    WINDOW,
    Verdict,
    idle_report,
    mql,
    network_percent,
    percentile,
)
from deploy.oci_cloud import NAMESPACE, OciCloud
from tests.deploy.fakes import (
    FakeMonitoringClient,
    Response,
    fixture_text,
    monitoring_body,
    sdk_models,
)

NOW = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
INSTANCE_ID = "ocid1.instance.oc1.eu-frankfurt-1.anthelinstance"
POINTS = 2016  # a week of 5-minute aggregates
GBPS_2_AT_20_PERCENT = 50_000_000.0  # bytes/s: 400 Mbit/s is 20% of the instance's 2 Gbps


class FakeCompute:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def get_instance(self, instance_id: str) -> Response:
        assert instance_id == INSTANCE_ID
        return Response(sdk_models(self._body, "Instance"))


def instance_body(**shape_changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fixture_text("monitoring/get_instance.json"))
    body["shapeConfig"].update(shape_changes)
    return {k: v for k, v in body.items() if v is not None}


def cloud(
    bodies: dict[str, list[dict[str, Any]]], instance: dict[str, Any] | None = None
) -> tuple[OciCloud, FakeMonitoringClient]:
    monitoring = FakeMonitoringClient(bodies)
    oci_cloud = OciCloud(
        identity=None,
        compute=FakeCompute(instance or instance_body()),
        blockstorage=None,
        monitoring=monitoring,
        tenancy_id="ocid1.tenancy.oc1..aaaaaaaatenancy",
    )
    return oci_cloud, monitoring


def week(
    cpu: list[float] | None = None,
    memory: float | None = 10.0,
    net_in: float = 1_000_000.0,
    net_out: float = 2_000_000.0,
) -> dict[str, list[dict[str, Any]]]:
    bodies = {
        "CpuUtilization": monitoring_body("CpuUtilization", cpu or [5.0] * POINTS, NOW),
        "NetworksBytesIn": monitoring_body("NetworksBytesIn", [net_in] * POINTS, NOW),
        "NetworksBytesOut": monitoring_body("NetworksBytesOut", [net_out] * POINTS, NOW),
    }
    if memory is not None:
        bodies["MemoryUtilization"] = monitoring_body("MemoryUtilization", [memory] * POINTS, NOW)
    return bodies


# ---------------------------------------------------------------------------------------------
# Percentile math


def test_nearest_rank_percentile() -> None:
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([7.0], 0.95) == 7.0


def test_percentile_rejects_nothing_to_rank() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.95)


def cpu_week(busy_points: int, busy_value: float) -> list[float]:
    """A week at 5% CPU with `busy_points` 5-minute aggregates at `busy_value`."""
    return [5.0] * (POINTS - busy_points) + [busy_value] * busy_points


# ceil(0.95 * 2016) = 1916: the 1916th smallest value is the 95th percentile, so up to 100 busy
# points (2016 - 1916) stay above it and 101 reach it.
@pytest.mark.parametrize(
    ("busy_points", "busy_value", "p95", "idle"),
    [
        (100, 95.0, 5.0, True),  # 5% of the week busy at 95% CPU: still idle by Oracle's rule
        (101, 95.0, 95.0, False),
        (101, 20.0, 20.0, False),  # exactly 20% is not "under 20%"
        (101, 19.99, 19.99, True),
    ],
)
def test_cpu_p95_at_the_boundary(
    busy_points: int, busy_value: float, p95: float, idle: bool
) -> None:
    oci_cloud, _monitoring = cloud(week(cpu=cpu_week(busy_points, busy_value)))
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    cpu = report.figures[0]
    assert cpu.samples == POINTS
    assert cpu.percent == pytest.approx(p95)
    assert cpu.idle is idle


@pytest.mark.parametrize(
    ("bytes_per_second", "idle"),
    [(GBPS_2_AT_20_PERCENT, False), (GBPS_2_AT_20_PERCENT * 0.999, True)],
)
def test_network_share_of_the_reported_bandwidth_at_the_boundary(
    bytes_per_second: float, idle: bool
) -> None:
    oci_cloud, _monitoring = cloud(week(net_in=1000.0, net_out=bytes_per_second))
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    network = report.figures[1]
    assert report.bandwidth_gbps == 2.0 and report.bandwidth_reported
    assert network.idle is idle
    assert network.percent == pytest.approx(20.0 * bytes_per_second / GBPS_2_AT_20_PERCENT)


def test_without_a_reported_bandwidth_a1_gets_one_gbps_per_ocpu() -> None:
    body = instance_body(networkingBandwidthInGbps=None)
    oci_cloud, _monitoring = cloud(week(net_out=GBPS_2_AT_20_PERCENT / 2), instance=body)
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert (report.bandwidth_gbps, report.bandwidth_reported) == (2.0, False)
    assert report.figures[1].percent == pytest.approx(10.0)


@pytest.mark.parametrize(("memory", "idle"), [(20.0, False), (19.99, True)])
def test_memory_average_at_the_boundary(memory: float, idle: bool) -> None:
    oci_cloud, _monitoring = cloud(week(memory=memory))
    assert idle_report(oci_cloud, INSTANCE_ID, NOW).figures[2].idle is idle


def test_network_takes_the_busier_direction_per_interval() -> None:
    stamp = NOW
    later = NOW + timedelta(minutes=5)
    shares = network_percent({stamp: 100.0, later: 10.0}, {stamp: 50.0, later: 30.0}, 1e-6)
    # 1e-6 Gbps = 1000 bit/s; 100 B/s = 800 bit/s = 80%, then 30 B/s = 24%.
    assert shares == pytest.approx([80.0, 24.0])


# ---------------------------------------------------------------------------------------------
# Verdicts


def test_an_idle_week_is_at_risk() -> None:
    oci_cloud, _monitoring = cloud(week())
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert report.verdict is Verdict.AT_RISK
    assert report.exit_code == 1


def test_one_busy_figure_clears_the_instance() -> None:
    oci_cloud, _monitoring = cloud(week(memory=35.0))
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert report.verdict is Verdict.NOT_AT_RISK
    assert report.exit_code == 0


def test_missing_memory_data_leaves_an_idle_instance_undecided() -> None:
    oci_cloud, _monitoring = cloud(week(memory=None))
    report = idle_report(oci_cloud, INSTANCE_ID, NOW)
    assert report.figures[2].percent is None
    assert report.verdict is Verdict.UNKNOWN
    assert report.exit_code == 1


def test_missing_memory_does_not_matter_when_cpu_is_busy() -> None:
    oci_cloud, _monitoring = cloud(week(cpu=[60.0] * POINTS, memory=None))
    assert idle_report(oci_cloud, INSTANCE_ID, NOW).verdict is Verdict.NOT_AT_RISK


# ---------------------------------------------------------------------------------------------
# What is asked of Monitoring


def test_the_queries_cover_the_last_seven_days_of_this_instance() -> None:
    oci_cloud, monitoring = cloud(week())
    idle_report(oci_cloud, INSTANCE_ID, NOW)
    queries = {details.query for _compartment, details in monitoring.requests}
    assert queries == {
        mql("CpuUtilization", INSTANCE_ID, "mean"),
        mql("MemoryUtilization", INSTANCE_ID, "mean"),
        mql("NetworksBytesIn", INSTANCE_ID, "rate"),
        mql("NetworksBytesOut", INSTANCE_ID, "rate"),
    }
    assert f'CpuUtilization[5m]{{resourceId = "{INSTANCE_ID}"}}.mean()' in queries
    for compartment, details in monitoring.requests:
        assert compartment == "ocid1.compartment.oc1..aaaaaaaacompartment"  # the instance's
        assert details.namespace == NAMESPACE
        assert (details.start_time, details.end_time) == (NOW - WINDOW, NOW)


def test_the_recorded_network_response_is_read_as_rates() -> None:
    body = json.loads(fixture_text("monitoring/summarize_network_in.json"))
    oci_cloud, _monitoring = cloud({"NetworksBytesIn": body})
    series = oci_cloud.metric_series("c", mql("NetworksBytesIn", INSTANCE_ID, "rate"), NOW, NOW)
    assert len(series) == 1
    assert series[0].dimensions["resourceDisplayName"] == "swarm-a1"
    assert [p.value for p in series[0].points] == [25_000_000.0, 12_500_000.0, 0.0]
    assert series[0].points[0].timestamp == datetime(2026, 11, 29, 12, 50, tzinfo=UTC)


def test_streams_of_one_metric_are_summed_for_network() -> None:
    first = monitoring_body("NetworksBytesOut", [GBPS_2_AT_20_PERCENT / 4] * POINTS, NOW)
    second = monitoring_body("NetworksBytesOut", [GBPS_2_AT_20_PERCENT / 4] * POINTS, NOW)
    bodies = week()
    bodies["NetworksBytesOut"] = first + second  # e.g. one stream per VNIC
    oci_cloud, _monitoring = cloud(bodies)
    assert idle_report(oci_cloud, INSTANCE_ID, NOW).figures[1].percent == pytest.approx(10.0)


def test_the_report_says_plainly_when_at_risk() -> None:
    oci_cloud, _monitoring = cloud(week())
    out = io.StringIO()
    render_idle(idle_report(oci_cloud, INSTANCE_ID, NOW), Console(file=out, width=200))
    text = out.getvalue()
    assert "AT RISK" in text
    assert "95th percentile" in text
    assert "do not burn CPU" in text


def test_cpu_percentile_is_oracles_95th() -> None:
    assert CPU_PERCENTILE == 0.95
