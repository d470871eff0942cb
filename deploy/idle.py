"""`python -m deploy idle-check`: would Oracle call this Always Free instance idle?

Oracle's rule (Always Free Resources, "Idle Always Free compute instances"): over 7 days, CPU
utilisation for the 95th percentile, network utilisation and (A1 only) memory utilisation are all
under 20%. Memory counts for A1 shapes only: the Micro (E2.1.Micro) is judged on CPU and network
alone. Oracle names a statistic only for CPU; for network and memory this reads
"utilisation" as the 7-day average. Network utilisation is the busier direction's rate as a share
of the instance's bandwidth (OCI reports it per instance; 1 Gbps per OCPU when it does not).
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from components.sizing import A1_SHAPE, E2_MICRO_SHAPE
from deploy.ports import Cloud, MetricSeries

WINDOW: Final = timedelta(days=7)
IDLE_BELOW_PERCENT: Final = 20.0
CPU_PERCENTILE: Final = 0.95
# 5-minute aggregates: 2,016 points per metric for the week, within what Monitoring serves for
# a 7-day range. A coarser interval would smooth the CPU percentile down.
INTERVAL: Final = "5m"
# Assumed for A1 when the instance does not report its bandwidth (an inference from Oracle's
# compute shapes table, which gives A1.Flex 1 Gbps per OCPU).
A1_GBPS_PER_OCPU: Final = 1.0
# Assumed for the E2.1.Micro when it does not report its bandwidth: 0.48 Gbps, the shape's
# figure in Oracle's shape table (as third parties quote it; not read from OCI here).
FIXED_GBPS: Final = {E2_MICRO_SHAPE: 0.48}


class Verdict(enum.Enum):
    AT_RISK = "at risk: all three figures are under 20%"
    NOT_AT_RISK = "not at risk"
    UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class Figure:
    name: str
    statistic: str
    percent: float | None  # None when Monitoring returned no data
    samples: int

    @property
    def idle(self) -> bool | None:
        return None if self.percent is None else self.percent < IDLE_BELOW_PERCENT


@dataclass(frozen=True)
class IdleReport:
    instance_id: str
    window_start: datetime
    window_end: datetime
    bandwidth_gbps: float
    bandwidth_reported: bool
    figures: tuple[Figure, ...]
    history: timedelta  # span between the first and last data point seen
    shape: str = ""

    @property
    def verdict(self) -> Verdict:
        """Any figure at or above 20% clears the instance (all three must be under); all three
        known and under means at risk; otherwise a missing figure leaves it open."""
        if any(figure.idle is False for figure in self.figures):
            return Verdict.NOT_AT_RISK
        if all(figure.idle is True for figure in self.figures):
            return Verdict.AT_RISK
        return Verdict.UNKNOWN

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict is Verdict.NOT_AT_RISK else 1


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at or
    below it (for 100 values and 0.95, the 95th smallest)."""
    if not values:
        raise ValueError("no values")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[rank - 1]


def mql(metric: str, instance_id: str, statistic: str) -> str:
    return f'{metric}[{INTERVAL}]{{resourceId = "{instance_id}"}}.{statistic}()'


def _merged(series: Sequence[MetricSeries], combine: str) -> dict[datetime, float]:
    """One value per timestamp across streams (a metric can come in several, e.g. per VNIC):
    summed for byte rates, averaged for percentages."""
    buckets: defaultdict[datetime, list[float]] = defaultdict(list)
    for stream in series:
        for point in stream.points:
            buckets[point.timestamp].append(point.value)
    if combine == "sum":
        return {stamp: sum(values) for stamp, values in buckets.items()}
    return {stamp: sum(values) / len(values) for stamp, values in buckets.items()}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def network_percent(
    bytes_in: dict[datetime, float], bytes_out: dict[datetime, float], bandwidth_gbps: float
) -> list[float]:
    """Per timestamp, the busier direction (a link carries its bandwidth each way) as a share
    of the bandwidth, in percent; rates are bytes per second."""
    bits_per_second = bandwidth_gbps * 1e9
    stamps = sorted(set(bytes_in) | set(bytes_out))
    return [
        max(bytes_in.get(s, 0.0), bytes_out.get(s, 0.0)) * 8 / bits_per_second * 100 for s in stamps
    ]


def memory_counts(shape: str) -> bool:
    """Oracle's memory criterion applies to A1 instances (kept when the shape is not known)."""
    return shape in ("", A1_SHAPE)


def idle_report(cloud: Cloud, instance_id: str, now: datetime) -> IdleReport:
    """Read the last 7 days from OCI Monitoring and compute Oracle's three figures."""
    facts = cloud.instance(instance_id)
    start = now - WINDOW

    def series(metric: str, statistic: str) -> Sequence[MetricSeries]:
        query = mql(metric, instance_id, statistic)
        return cloud.metric_series(facts.compartment_id, query, start, now)

    cpu = _merged(series("CpuUtilization", "mean"), "mean")
    memory = _merged(series("MemoryUtilization", "mean"), "mean")
    bytes_in = _merged(series("NetworksBytesIn", "rate"), "sum")
    bytes_out = _merged(series("NetworksBytesOut", "rate"), "sum")

    reported = facts.networking_bandwidth_gbps is not None and facts.networking_bandwidth_gbps > 0
    if reported:
        bandwidth = float(facts.networking_bandwidth_gbps or 0)
    else:
        bandwidth = FIXED_GBPS.get(facts.shape, facts.ocpus * A1_GBPS_PER_OCPU)
    network = network_percent(bytes_in, bytes_out, bandwidth) if bandwidth > 0 else []
    cpu_values = list(cpu.values())
    stamps = sorted(set(cpu) | set(memory) | set(bytes_in) | set(bytes_out))
    figures: tuple[Figure, ...] = (
        Figure(
            "CPU",
            "95th percentile",
            percentile(cpu_values, CPU_PERCENTILE) if cpu_values else None,
            len(cpu_values),
        ),
        Figure("network", "7-day average", _mean(network), len(network)),
    )
    if memory_counts(facts.shape):
        figures += (Figure("memory", "7-day average", _mean(list(memory.values())), len(memory)),)
    return IdleReport(
        instance_id=instance_id,
        window_start=start,
        window_end=now,
        bandwidth_gbps=bandwidth,
        bandwidth_reported=reported,
        figures=figures,
        history=(stamps[-1] - stamps[0]) if stamps else timedelta(0),
        shape=facts.shape,
    )
