"""The capacity retry loop against a scripted stack, a fake clock and seeded jitter."""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Callable

import pytest
from rich.console import Console

from deploy.failures import FailureKind, classify
from deploy.ports import OperatorError, Preview, PulumiUpError
from deploy.retry import (
    AVAILABILITY_DOMAIN_KEY,
    CapacityRetry,
    DomainPlan,
    RetrySettings,
    backoff_delay,
    plan_domains,
)
from tests.deploy.fakes import FakeClock, ScriptedStack, SequenceJitter, fixture_text

MINUTE = 60.0
RELAXED = RetrySettings(deadline=24 * 3600, min_delay=60, max_delay=900)


def run(
    stack: ScriptedStack,
    count: int,
    settings: RetrySettings = RELAXED,
    *,
    clock: FakeClock | None = None,
    seed: int = 7,
    names: list[str] | None = None,
    allow_replace: bool = False,
) -> tuple[int, FakeClock, str]:
    clock = clock or FakeClock()
    out = io.StringIO()
    plan = plan_domains(
        stack.values.get(AVAILABILITY_DOMAIN_KEY), names, count, stack.data_volume_domain()
    )
    code = CapacityRetry(
        stack,
        plan,
        settings,
        clock=clock,
        jitter=random.Random(seed),
        console=Console(file=out, width=300, color_system=None),
        allow_replace=allow_replace,
    ).run()
    return code, clock, out.getvalue()


def attempt_lines(printed: str) -> list[str]:
    return [line for line in printed.splitlines() if line.startswith("attempt ")]


# ---------------------------------------------------------------------------------------------
# Domain rotation


def test_capacity_tries_every_domain_in_turn_then_waits_and_starts_over() -> None:
    stack = ScriptedStack(["capacity", "capacity", "capacity", None])
    code, clock, printed = run(stack, count=3)
    assert code == 0
    # Unset means domain 1; the rotation writes 2 and 3, the next round starts at 1 again.
    assert stack.domains_tried == [None, "2", "3", "1"]
    assert len(clock.sleeps) == 1  # only the full round of failures waited
    # Deployed in the domain the run started with: the config is as the user left it.
    assert AVAILABILITY_DOMAIN_KEY not in stack.values
    lines = attempt_lines(printed)
    assert len(lines) == 4
    assert lines[0].endswith("out of host capacity · next: domain 2 now")
    assert "next: domain 1 in" in lines[2]
    assert lines[3] == "attempt 4 · domain 1/3 · deployed"


def test_a_pinned_domain_is_rotated_from_where_it_points_announced_and_kept_on_success() -> None:
    stack = ScriptedStack(
        ["capacity", "capacity", "capacity", "capacity", None],
        values={AVAILABILITY_DOMAIN_KEY: "2"},
    )
    code, clock, printed = run(stack, count=3)
    assert code == 0
    assert stack.domains_tried == ["2", "3", "1", "2", "3"]
    assert len(clock.sleeps) == 1
    assert "is set to 2: it is rotated (2, 3, 1)" in printed
    # The instance now lives in domain 3, so the config must keep naming it.
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "3"
    assert f"{AVAILABILITY_DOMAIN_KEY} stays 3" in printed


def test_a_domain_given_by_name_starts_the_rotation_at_that_name_and_is_kept_a_name() -> None:
    names = ["AD-1", "AD-2", "AD-3"]
    stack = ScriptedStack(["capacity", None], values={AVAILABILITY_DOMAIN_KEY: "AD-3"})
    code, _clock, printed = run(stack, count=3, names=names)
    assert code == 0
    # The user named their domain: the rotation writes names too, and the name stays.
    assert stack.domains_tried == ["AD-3", "AD-1"]
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "AD-1"
    assert f"{AVAILABILITY_DOMAIN_KEY} stays AD-1: the host now lives there" in printed


def test_a_named_domain_is_restored_in_the_users_spelling_after_a_full_round() -> None:
    names = ["Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2", "Uocm:EU-FRANKFURT-1-AD-3"]
    stack = ScriptedStack(
        ["capacity", "capacity", "capacity", None], values={AVAILABILITY_DOMAIN_KEY: names[2]}
    )
    code, _clock, _printed = run(stack, count=3, names=names)
    assert code == 0
    assert stack.domains_tried == [names[2], names[0], names[1], names[2]]
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "Uocm:EU-FRANKFURT-1-AD-3"


def test_throttling_waits_and_retries_the_same_domain() -> None:
    stack = ScriptedStack(["throttled", "throttled", None], values={AVAILABILITY_DOMAIN_KEY: "2"})
    code, clock, _printed = run(stack, count=3)
    assert code == 0
    assert stack.domains_tried == ["2", "2", "2"]
    assert len(clock.sleeps) == 2
    assert stack.config_writes == []


def test_throttling_inside_a_round_keeps_the_rest_of_the_round() -> None:
    stack = ScriptedStack(["capacity", "throttled", "capacity", "capacity", None])
    code, clock, _printed = run(stack, count=3)
    assert code == 0
    assert stack.domains_tried == [None, "2", "2", "3", "1"]
    assert len(clock.sleeps) == 2  # one for the 429, one after the round


def test_a_single_domain_region_waits_after_every_capacity_failure() -> None:
    stack = ScriptedStack(["capacity", "capacity", None])
    code, clock, _printed = run(stack, count=1)
    assert code == 0
    assert stack.domains_tried == [None, None, None]
    assert len(clock.sleeps) == 2


SCRIPT_TEXTS = ("capacity", "capacity", "throttled", "limit")


@pytest.mark.parametrize("script", sorted(set(itertools.permutations(SCRIPT_TEXTS))))
def test_any_order_of_the_three_errors_follows_the_rules(script: tuple[str, ...]) -> None:
    """Capacity moves to the next domain, 429 stays, LimitExceeded ends the run at once."""
    stack = ScriptedStack(list(script), values={AVAILABILITY_DOMAIN_KEY: "1"})
    code, clock, printed = run(stack, count=3)
    stop_at = script.index("limit")
    assert code == 1
    assert len(stack.domains_tried) == stop_at + 1  # nothing after the limit error
    order = ["1", "2", "3"]
    for kind, before, after in zip(
        script[:stop_at], stack.domains_tried, stack.domains_tried[1:], strict=False
    ):
        assert before is not None and after is not None
        if kind == "throttled":
            assert after == before
        else:
            assert after == order[(order.index(before) + 1) % 3]
    # Waits: one per 429, none for capacity within a round (three domains, two capacity errors).
    assert len(clock.sleeps) == script[:stop_at].count("throttled")
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "1"  # restored after the stop
    assert len(attempt_lines(printed)) == stop_at + 1


# ---------------------------------------------------------------------------------------------
# The data volume pins the domain

FRANKFURT = ["Uocm:EU-FRANKFURT-1-AD-1", "Uocm:EU-FRANKFURT-1-AD-2", "Uocm:EU-FRANKFURT-1-AD-3"]


def test_with_a_data_volume_capacity_is_retried_in_its_domain_only() -> None:
    stack = ScriptedStack(
        ["capacity", "capacity", "capacity", None],
        values={AVAILABILITY_DOMAIN_KEY: "2"},
        volume_domain=FRANKFURT[1],
    )
    code, clock, printed = run(stack, count=3, names=FRANKFURT)
    assert code == 0
    assert stack.domains_tried == ["2", "2", "2", "2"]
    assert stack.config_writes == []
    assert len(clock.sleeps) == 3  # every capacity failure waits: there is no other domain
    assert printed.splitlines()[0] == (
        "the data volume lives in Uocm:EU-FRANKFURT-1-AD-2 (domain 2/3): A1 capacity is "
        "retried in that domain only; ai-swarm:availabilityDomain is not rotated"
    )
    lines = attempt_lines(printed)
    assert lines[0].startswith("attempt 1 · domain 2/3 · out of host capacity · next: domain 2 in")


def test_a_pinned_domain_in_the_users_spelling_stays_as_written() -> None:
    stack = ScriptedStack(
        ["capacity", None],
        values={AVAILABILITY_DOMAIN_KEY: "AD-3"},
        volume_domain="AD-3",
    )
    code, _clock, _printed = run(stack, count=3, names=["AD-1", "AD-2", "AD-3"])
    assert code == 0
    assert stack.domains_tried == ["AD-3", "AD-3"]
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "AD-3"
    assert stack.config_writes == []


def test_a_zero_deadline_with_a_data_volume_is_one_attempt_and_exit_2() -> None:
    settings = RetrySettings(deadline=0, min_delay=0, max_delay=0)
    stack = ScriptedStack(["capacity"] * 3, volume_domain=FRANKFURT[0])
    code, _clock, printed = run(stack, count=3, settings=settings, names=FRANKFURT)
    assert code == 2
    assert stack.domains_tried == [None]
    assert attempt_lines(printed)[-1].endswith("deadline reached: no further attempt")


def test_without_the_region_list_the_volumes_domain_is_read_from_its_name() -> None:
    stack = ScriptedStack(["capacity", None], volume_domain=FRANKFURT[0])
    code, _clock, _printed = run(stack, count=3)  # `--domains 3`: no names from OCI
    assert code == 0
    assert stack.domains_tried == [None, None]


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        (
            "1",
            "ai-swarm:availabilityDomain is 1, but the data volume lives in "
            "Uocm:EU-FRANKFURT-1-AD-2 (domain 2) and cannot move: set "
            "ai-swarm:availabilityDomain to 2 (or Uocm:EU-FRANKFURT-1-AD-2)",
        ),
        (
            None,
            "ai-swarm:availabilityDomain is not set (domain 1), but the data volume lives in "
            "Uocm:EU-FRANKFURT-1-AD-2 (domain 2) and cannot move: set "
            "ai-swarm:availabilityDomain to 2 (or Uocm:EU-FRANKFURT-1-AD-2)",
        ),
    ],
)
def test_a_config_pointing_away_from_the_volume_is_refused_before_any_attempt(
    configured: str | None, message: str
) -> None:
    with pytest.raises(OperatorError) as raised:
        plan_domains(configured, FRANKFURT, 3, FRANKFURT[1])
    assert str(raised.value) == message


def test_a_volume_in_a_domain_the_region_does_not_list_is_refused() -> None:
    with pytest.raises(OperatorError, match="not one of the region's availability domains"):
        plan_domains("1", FRANKFURT, 3, "Uocm:US-ASHBURN-AD-1")


# ---------------------------------------------------------------------------------------------
# The preview guards the host and its data


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        (
            "replace_instance",
            [
                "  replace the instance host-instance (because of metadata)",
                "  replace the data volume's attachment host-data-attachment "
                "(because of instanceId)",
            ],
        ),
        (
            "delete_attachment",
            ["  delete the data volume's attachment host-data-attachment"],
        ),
    ],
)
def test_a_plan_that_replaces_or_deletes_the_host_or_its_data_is_refused(
    recorded: str, expected: list[str]
) -> None:
    stack = ScriptedStack([None], preview_name=recorded)
    code, clock, printed = run(stack, count=3)
    assert code == 1
    assert stack.domains_tried == []  # `up` never ran
    assert clock.sleeps == []
    lines = printed.splitlines()
    start = lines.index("preview: the plan replaces or deletes:")
    assert lines[start + 1 : start + 1 + len(expected)] == expected
    assert "attempt 1 · domain 1/3 · plan refused · stopped: nothing was changed" in lines
    assert any(line.startswith("hint:") and "--allow-replace" in line for line in lines)


def test_allow_replace_goes_ahead_and_still_lists_what_is_replaced() -> None:
    stack = ScriptedStack([None], preview_name="replace_instance")
    code, _clock, printed = run(stack, count=3, allow_replace=True)
    assert code == 0
    assert stack.domains_tried == [None]
    assert "preview: the plan replaces or deletes (allowed by --allow-replace):" in printed
    assert "the instance host-instance (because of metadata)" in printed


def test_updates_and_sames_go_ahead_silently() -> None:
    stack = ScriptedStack([None], preview_name="updates_only")
    code, _clock, printed = run(stack, count=3)
    assert code == 0
    assert stack.domains_tried == [None]
    assert "preview:" not in printed


def test_every_attempt_previews_first() -> None:
    stack = ScriptedStack(["capacity", "throttled", None])
    code, _clock, _printed = run(stack, count=3)
    assert code == 0
    assert stack.previews == 3


def test_a_plan_that_turns_destructive_mid_run_stops_the_rotation() -> None:
    # The first attempt's plan is safe; by the second (another domain) it replaces the instance.
    stack = ScriptedStack(["capacity", None])
    original_preview = stack.preview

    def preview(on_output: Callable[[str], None]) -> Preview:
        if stack.previews == 1:
            stack.preview_name = "replace_instance"
        return original_preview(on_output)

    stack.preview = preview  # type: ignore[method-assign]
    code, _clock, printed = run(stack, count=3, names=None)
    assert code == 1
    assert stack.domains_tried == [None]
    # Abandoned: the rotation's write is taken back.
    assert stack.config_writes == [(AVAILABILITY_DOMAIN_KEY, "2"), (AVAILABILITY_DOMAIN_KEY, None)]
    assert "plan refused" in attempt_lines(printed)[1]


def test_a_failed_preview_is_classified_like_a_failed_up() -> None:
    stack = ScriptedStack([None])

    def failing(on_output: Callable[[str], None]) -> Preview:
        raise PulumiUpError(fixture_text("up/policy.txt"))

    stack.preview = failing  # type: ignore[method-assign]
    code, _clock, printed = run(stack, count=3)
    assert code == 1
    assert stack.domains_tried == []
    assert "mandatory policy violated · stopped" in attempt_lines(printed)[0]


# ---------------------------------------------------------------------------------------------
# Stop errors


@pytest.mark.parametrize(
    "fixture", ["limit", "not_authenticated", "not_authorized", "policy", "protected", "other"]
)
def test_a_stop_error_never_retries(fixture: str) -> None:
    stack = ScriptedStack([fixture, None, None])
    code, clock, printed = run(stack, count=3)
    assert code == 1
    assert len(stack.domains_tried) == 1
    assert clock.sleeps == []
    assert "stopped" in attempt_lines(printed)[0]


def test_a_stop_after_rotating_restores_the_users_domain() -> None:
    stack = ScriptedStack(["capacity", "limit"], values={AVAILABILITY_DOMAIN_KEY: "1"})
    code, _clock, printed = run(stack, count=3)
    assert code == 1
    assert stack.config_writes == [(AVAILABILITY_DOMAIN_KEY, "2"), (AVAILABILITY_DOMAIN_KEY, "1")]
    assert f"{AVAILABILITY_DOMAIN_KEY} restored to 1" in printed


def test_a_stop_after_rotating_an_unset_domain_removes_the_key_again() -> None:
    stack = ScriptedStack(["capacity", "policy"])
    code, _clock, _printed = run(stack, count=2)
    assert code == 1
    assert stack.config_writes == [(AVAILABILITY_DOMAIN_KEY, "2"), (AVAILABILITY_DOMAIN_KEY, None)]
    assert AVAILABILITY_DOMAIN_KEY not in stack.values


def test_the_protected_volume_stop_carries_a_hint() -> None:
    _code, _clock, printed = run(ScriptedStack(["protected"]), count=3)
    assert "hint: a protected resource" in printed


# ---------------------------------------------------------------------------------------------
# Deadline and interruption


def test_the_deadline_stops_before_a_wait_that_would_reach_it() -> None:
    settings = RetrySettings(deadline=10 * MINUTE, min_delay=4 * MINUTE, max_delay=4 * MINUTE)
    stack = ScriptedStack(["capacity"] * 5, values={AVAILABILITY_DOMAIN_KEY: "1"})
    code, clock, printed = run(stack, count=1, settings=settings)
    assert code == 2
    # Waits of exactly 4 minutes: attempts at 0, 4 and 8 minutes; a fourth would be at 12.
    assert len(stack.domains_tried) == 3
    assert clock.sleeps == [4 * MINUTE, 4 * MINUTE]
    assert "deadline reached" in attempt_lines(printed)[-1]


def test_a_wait_ending_exactly_at_the_deadline_is_not_taken() -> None:
    settings = RetrySettings(deadline=10 * MINUTE, min_delay=5 * MINUTE, max_delay=5 * MINUTE)
    stack = ScriptedStack(["capacity"] * 5)
    code, clock, _printed = run(stack, count=1, settings=settings)
    assert code == 2
    assert clock.sleeps == [5 * MINUTE]


def test_a_zero_deadline_is_exactly_one_attempt() -> None:
    settings = RetrySettings(deadline=0, min_delay=0, max_delay=0)
    stack = ScriptedStack(["capacity"] * 3, values={AVAILABILITY_DOMAIN_KEY: "3"})
    code, clock, printed = run(stack, count=3, settings=settings)
    assert code == 2
    assert stack.domains_tried == ["3"]
    assert clock.sleeps == []
    assert stack.config_writes == []
    assert len(attempt_lines(printed)) == 1


def test_the_deadline_ends_a_round_early() -> None:
    # Each attempt takes 20 minutes (the clock advances inside up); the deadline is 30 minutes.
    settings = RetrySettings(deadline=30 * MINUTE, min_delay=60, max_delay=60)
    clock = FakeClock()
    stack = ScriptedStack(["capacity"] * 3, values={AVAILABILITY_DOMAIN_KEY: "1"})
    original_up = stack.up

    def slow_up(on_output: Callable[[str], None]) -> None:
        clock.elapsed += 20 * MINUTE
        original_up(on_output)

    stack.up = slow_up  # type: ignore[method-assign]
    code, _clock, _printed = run(stack, count=3, settings=settings, clock=clock)
    assert code == 2
    assert stack.domains_tried == ["1", "2"]
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "1"


def test_the_deadline_also_bounds_throttling() -> None:
    settings = RetrySettings(deadline=90, min_delay=60, max_delay=60)
    code, clock, _printed = run(ScriptedStack(["throttled"] * 3), count=3, settings=settings)
    assert code == 2
    assert clock.sleeps == [60]


@pytest.mark.parametrize("during", ["up", "wait"])
def test_ctrl_c_stops_cleanly_and_restores_the_domain(
    during: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if during == "up":
        stack = ScriptedStack(
            ["capacity", KeyboardInterrupt], values={AVAILABILITY_DOMAIN_KEY: "1"}
        )
        clock = FakeClock()
    else:
        stack = ScriptedStack(["capacity", "capacity"], values={AVAILABILITY_DOMAIN_KEY: "1"})
        clock = FakeClock()

        def interrupted(_seconds: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(clock, "sleep", interrupted)
    code, _clock, printed = run(stack, count=2, clock=clock)
    assert code == 1
    assert len(stack.domains_tried) == 2
    assert stack.values[AVAILABILITY_DOMAIN_KEY] == "1"
    assert "interrupted" in printed


# ---------------------------------------------------------------------------------------------
# Back-off


def test_backoff_ceilings_double_from_min_delay_up_to_max_delay() -> None:
    jitter = SequenceJitter([1.0] * 7)
    delays = [backoff_delay(n, RELAXED, jitter) for n in range(7)]
    assert jitter.bounds == [
        (60, 60),
        (60, 120),
        (60, 240),
        (60, 480),
        (60, 900),
        (60, 900),
        (60, 900),
    ]
    assert delays == [60, 120, 240, 480, 900, 900, 900]


def test_backoff_from_zero_starts_at_one_second() -> None:
    settings = RetrySettings(deadline=3600, min_delay=0, max_delay=10)
    jitter = SequenceJitter([1.0] * 5)
    assert [backoff_delay(n, settings, jitter) for n in range(5)] == [1, 2, 4, 8, 10]


def test_seeded_full_jitter_stays_within_the_bounds_and_varies() -> None:
    rng = random.Random(1234)
    delays = [backoff_delay(n, RELAXED, rng) for n in range(200)]
    for n, delay in enumerate(delays):
        assert 60 <= delay <= min(900, 60 * 2**n)
    late = delays[10:]
    assert max(late) - min(late) > 300  # full jitter spreads over most of [60, 900]
    again = random.Random(1234)
    assert [backoff_delay(n, RELAXED, again) for n in range(200)] == delays


def test_the_loop_sleeps_the_jittered_delays() -> None:
    stack = ScriptedStack(["throttled", "throttled", None])
    clock = FakeClock()
    run(stack, count=3, clock=clock, seed=99)
    expected_rng = random.Random(99)
    expected = [backoff_delay(n, RELAXED, expected_rng) for n in range(2)]
    assert clock.sleeps == expected


def test_settings_reject_min_above_max() -> None:
    with pytest.raises(ValueError, match="min_delay"):
        RetrySettings(deadline=0, min_delay=10, max_delay=5)


# ---------------------------------------------------------------------------------------------
# Planning


def test_domain_plan_order_wraps_from_the_first() -> None:
    assert DomainPlan(count=3, first=2, original="2").order() == (2, 3, 1)
    assert DomainPlan(count=1, first=1, original=None).order() == (1,)


@pytest.mark.parametrize(
    ("configured", "names", "message"),
    [
        ("4", None, "the region has 3"),
        ("AD-2", None, "index is unknown"),
        ("AD-9", ["AD-1", "AD-2", "AD-3"], "not one of AD-1, AD-2, AD-3"),
    ],
)
def test_plan_rejects_a_domain_it_cannot_place(
    configured: str, names: list[str] | None, message: str
) -> None:
    with pytest.raises(OperatorError, match=message):
        plan_domains(configured, names, 3)


def test_the_fixtures_classify_as_their_names_say() -> None:
    # Guards the fixtures themselves: a rotted fixture would make the loop tests meaningless.
    expected = {
        "capacity": FailureKind.CAPACITY,
        "throttled": FailureKind.THROTTLED,
        "limit": FailureKind.LIMIT,
        "policy": FailureKind.POLICY,
    }
    for name, kind in expected.items():
        assert classify(fixture_text(f"up/{name}.txt")).kind is kind
