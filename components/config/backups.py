"""The backup keys, `ai-swarm:backups.*`: the data volume's backup schedule, inside the allowance.

Always Free includes five volume backups in total, boot and block volumes together. The boot
volume gets no backups here (it holds nothing the cloud-config cannot make again), so the data
volume's schedule may keep all five; a schedule that would keep more is refused.

    pulumi config set --path ai-swarm:backups.keep 3
    pulumi config set --path ai-swarm:backups.period ONE_DAY
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.readers import ConfigError, boolean, key, structured, unknown_fields

# Always Free: "five volume backups in total" (boot and block volumes together).
FREE_VOLUME_BACKUPS = 5
# The boot volume has no backup policy: the instance and its cloud-config can be made again.
BOOT_VOLUME_BACKUPS = 0
MAX_DATA_VOLUME_BACKUPS = FREE_VOLUME_BACKUPS - BOOT_VOLUME_BACKUPS

# OCI's schedule periods offered here, with their shortest length in seconds (a month can be 28
# days), so that `keep` periods of retention never hold more than `keep` backups.
PERIOD_SECONDS: Mapping[str, int] = {
    "ONE_DAY": 86_400,
    "ONE_WEEK": 7 * 86_400,
    "ONE_MONTH": 28 * 86_400,
}
BACKUP_TYPES = ("INCREMENTAL", "FULL")
DAYS_OF_WEEK = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
# Every month has these days.
LAST_DAY_OF_MONTH = 28
# A backup expires this long before the next one is taken, so that the tenancy never holds
# `keep` + 1 backups while one is replaced.
HANDOVER_SECONDS = 3_600

_FIELDS = ("enabled", "keep", "period", "type", "dayOfWeek", "dayOfMonth", "hourOfDay")


@dataclass(frozen=True)
class BackupSchedule:
    """The data volume's backups: one every `period`, the newest `keep` kept.

    The defaults take a weekly incremental on Sunday at 04:00 UTC, an hour after the nightly
    `pg_dump` (which follows `hour_of_day`), so each volume backup holds fresh dumps; four are
    kept, which
    leaves one free backup for a manual one (before an upgrade, say).
    """

    enabled: bool = True
    keep: int = 4
    period: str = "ONE_WEEK"
    backup_type: str = "INCREMENTAL"
    day_of_week: str | None = "SUNDAY"
    day_of_month: int | None = None
    hour_of_day: int = 4

    @property
    def retention_seconds(self) -> int:
        """`keep` periods, less the handover: OCI counts `keep` backups, never `keep` + 1."""
        return self.keep * PERIOD_SECONDS[self.period] - HANDOVER_SECONDS

    @property
    def summary(self) -> str:
        """One line for the stack outputs, e.g. "INCREMENTAL every ONE_WEEK (SUNDAY 04:00 UTC),
        newest 4 kept"."""
        if not self.enabled:
            return "none: ai-swarm:backups.enabled is false"
        day = self.day_of_week or (f"day {self.day_of_month}" if self.day_of_month else "daily")
        return (
            f"{self.backup_type} every {self.period} ({day} {self.hour_of_day:02d}:00 UTC), "
            f"newest {self.keep} kept"
        )


def backup_schedule(cfg: pulumi.Config) -> BackupSchedule:
    """Read `ai-swarm:backups`; any field left out keeps its default."""
    allowed = "an object with any of " + ", ".join(_FIELDS)
    given = structured(cfg, "backups", dict, allowed)
    unknown_fields(key("backups"), given, _FIELDS)
    period = _choice(given, "period", "ONE_WEEK", tuple(PERIOD_SECONDS))
    return BackupSchedule(
        enabled=boolean(_key("enabled"), given.get("enabled", True)),
        keep=_keep(given),
        period=period,
        backup_type=_choice(given, "type", "INCREMENTAL", BACKUP_TYPES),
        day_of_week=_day_of_week(given, period),
        day_of_month=_day_of_month(given, period),
        hour_of_day=_whole(
            given, "hourOfDay", default=4, low=0, high=23, meaning="an hour of the day (UTC)"
        ),
    )


def _key(field: str) -> str:
    return f"{key('backups')}.{field}"


def _keep(given: Mapping[str, Any]) -> int:
    return _whole(
        given,
        "keep",
        default=BackupSchedule.keep,
        low=1,
        high=MAX_DATA_VOLUME_BACKUPS,
        meaning=f"the number of backups kept; Always Free includes {FREE_VOLUME_BACKUPS} volume "
        f"backups in total and the boot volume keeps {BOOT_VOLUME_BACKUPS}",
    )


def _choice(given: Mapping[str, Any], field: str, default: str, options: tuple[str, ...]) -> str:
    value = given.get(field, default)
    if value not in options:
        raise ConfigError(_key(field), value, f"one of {', '.join(options)}")
    return str(value)


def _whole(
    given: Mapping[str, Any], field: str, *, default: int, low: int, high: int, meaning: str
) -> int:
    value = given.get(field, default)
    text = str(value).strip()
    allowed = f"a whole number from {low} to {high}: {meaning}"
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(_key(field), value, allowed)
    return int(text)


def _day_of_week(given: Mapping[str, Any], period: str) -> str | None:
    if period != "ONE_WEEK":
        _refuse_field(given, "dayOfWeek", "ONE_WEEK", period)
        return None
    return _choice(given, "dayOfWeek", "SUNDAY", DAYS_OF_WEEK)


def _day_of_month(given: Mapping[str, Any], period: str) -> int | None:
    if period != "ONE_MONTH":
        _refuse_field(given, "dayOfMonth", "ONE_MONTH", period)
        return None
    return _whole(
        given,
        "dayOfMonth",
        default=1,
        low=1,
        high=LAST_DAY_OF_MONTH,
        meaning="a day every month has",
    )


def _refuse_field(given: Mapping[str, Any], field: str, applies_to: str, period: str) -> None:
    """OCI ignores a field that does not apply to the period; a setting that does nothing is
    refused rather than silently dropped."""
    if field in given:
        raise ConfigError(
            _key(field), given[field], f"unset: it applies to period {applies_to}, not {period}"
        )
