"""The backup keys, `ai-swarm:backups.*`: the data volume's backup schedule, inside the allowance.

Always Free includes five volume backups in total, boot and block volumes together. The boot
volume gets no backups here (it holds nothing the cloud-config cannot make again), so the data
volume's schedule may keep all five; a schedule that would keep more is refused.

    pulumi config set --path ai-swarm:backups.keep 3
    pulumi config set --path ai-swarm:backups.period ONE_DAY

The nightly `pg_dump` files are copied off the volume to Object Storage too (`offsite`, on by
default when backups are on), kept there `offsiteDays`, and encrypted on the host first when
`ageRecipient` (an `age` X25519 public key) is set.
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
DEFAULT_DAY_OF_WEEK = "SUNDAY"
# Every month has these days.
LAST_DAY_OF_MONTH = 28
# A monthly schedule's day when `dayOfMonth` is unset.
DEFAULT_DAY_OF_MONTH = 1
# A backup expires this long before the next one is taken, so that the tenancy never holds
# `keep` + 1 backups while one is replaced.
HANDOVER_SECONDS = 3_600

_FIELDS = (
    "enabled",
    "keep",
    "period",
    "type",
    "dayOfWeek",
    "dayOfMonth",
    "hourOfDay",
    "offsite",
    "offsiteDays",
    "ageRecipient",
)

# Off-site dumps are kept two weeks by default: twice the local seven, so that a dump lost with
# the volume still has a week of older copies behind it.
OFFSITE_DAYS = 14
# A year at most: OCI's lifecycle rule counts whole days, and a longer retention would fill the
# free 20 GB of Object Storage even with dumps of 55 MB a night (the policy pack checks the real
# arithmetic against the expected dump size).
MAX_OFFSITE_DAYS = 365
# `age` X25519 recipients are Bech32 (BIP 173, not Bech32m) with the human-readable part "age"
# and a 32-byte key (age specification, "X25519 recipient type").
AGE_HRP = "age"
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AGE_KEY_BYTES = 32


@dataclass(frozen=True)
class OffsiteSettings:
    """The nightly dumps' copies in Object Storage: on or off, days kept, optional encryption."""

    enabled: bool = True
    days: int = OFFSITE_DAYS
    age_recipient: str | None = None


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
    day_of_week: str | None = DEFAULT_DAY_OF_WEEK
    day_of_month: int | None = None
    hour_of_day: int = 4
    offsite: OffsiteSettings = OffsiteSettings()

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
    period = _choice(given, "period", BackupSchedule.period, tuple(PERIOD_SECONDS))
    enabled = boolean(_key("enabled"), given.get("enabled", BackupSchedule.enabled))
    return BackupSchedule(
        enabled=enabled,
        keep=_keep(given),
        period=period,
        backup_type=_choice(given, "type", BackupSchedule.backup_type, BACKUP_TYPES),
        day_of_week=_day_of_week(given, period),
        day_of_month=_day_of_month(given, period),
        hour_of_day=_whole(
            given,
            "hourOfDay",
            default=BackupSchedule.hour_of_day,
            low=0,
            high=23,
            meaning="an hour of the day (UTC)",
        ),
        offsite=_offsite(given, enabled),
    )


def _offsite(given: Mapping[str, Any], backups_enabled: bool) -> OffsiteSettings:
    recipient = given.get("ageRecipient")
    return OffsiteSettings(
        enabled=boolean(_key("offsite"), given.get("offsite", backups_enabled)),
        days=_whole(
            given,
            "offsiteDays",
            default=OFFSITE_DAYS,
            low=1,
            high=MAX_OFFSITE_DAYS,
            meaning="the days each off-site dump is kept; more than a year would not fit the "
            "free 20 GB of Object Storage",
        ),
        age_recipient=None if recipient is None else age_recipient(_key("ageRecipient"), recipient),
    )


def age_recipient(full_key: str, value: Any) -> str:
    """An `age` X25519 public key (`age1...`), its Bech32 checksum and length checked."""
    allowed = "an age X25519 public key: age1 and 58 Bech32 characters, as `age-keygen -y` prints"
    text = value.strip() if isinstance(value, str) else ""
    if _bech32_payload(text, AGE_HRP) is None:
        raise ConfigError(full_key, value, allowed)
    return text


def _bech32_payload(text: str, hrp: str) -> bytes | None:
    """The bytes a lowercase Bech32 string with `hrp` carries, or None if it is not one."""
    if not text.startswith(hrp + "1") or text != text.lower():
        return None
    data = [_BECH32_CHARSET.find(c) for c in text[len(hrp) + 1 :]]
    if len(data) < 6 or -1 in data or _bech32_polymod(_hrp_expand(hrp) + data) != 1:
        return None
    bits, value, out = 0, 0, bytearray()
    for group in data[:-6]:
        value, bits = (value << 5) | group, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((value >> bits) & 0xFF)
    if bits >= 5 or value & ((1 << bits) - 1):
        return None  # padding longer than 4 bits, or not zero
    return bytes(out) if len(out) == _AGE_KEY_BYTES else None


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, g in enumerate(generator):
            check ^= g if (top >> i) & 1 else 0
    return check


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
    return _choice(given, "dayOfWeek", DEFAULT_DAY_OF_WEEK, DAYS_OF_WEEK)


def _day_of_month(given: Mapping[str, Any], period: str) -> int | None:
    if period != "ONE_MONTH":
        _refuse_field(given, "dayOfMonth", "ONE_MONTH", period)
        return None
    return _whole(
        given,
        "dayOfMonth",
        default=DEFAULT_DAY_OF_MONTH,
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
