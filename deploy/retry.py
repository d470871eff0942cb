"""`python -m deploy up`: `pulumi up` until A1 capacity is found, the deadline passes, or an
error that waiting cannot fix stops it.

One round tries every availability domain once, starting from the one the config names; a
capacity failure moves straight on to the next domain, and only a round that found no capacity
anywhere waits (exponential back-off with full jitter, bounded by `--min-delay` and
`--max-delay`). Throttling (429) waits and retries the same domain. Anything else stops at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from rich.console import Console
from rich.markup import escape

from deploy.durations import format_duration
from deploy.failures import Failure, FailureKind, classify
from deploy.ports import Clock, DeployStack, Jitter, OperatorError, PulumiUpError

AVAILABILITY_DOMAIN_KEY: Final = "ai-swarm:availabilityDomain"

EXIT_DEPLOYED: Final = 0
EXIT_STOPPED: Final = 1
EXIT_DEADLINE: Final = 2

# The first wait's upper bound when --min-delay is 0s; it doubles from there.
_ZERO_MIN_BASE_SECONDS: Final = 1.0
_MAX_DOUBLINGS: Final = 60


@dataclass(frozen=True)
class RetrySettings:
    deadline: float  # seconds after the start at which no new attempt or wait begins
    min_delay: float
    max_delay: float

    def __post_init__(self) -> None:
        if min(self.deadline, self.min_delay, self.max_delay) < 0:
            raise ValueError("durations must not be negative")
        if self.min_delay > self.max_delay:
            raise ValueError("min_delay must not exceed max_delay")


@dataclass(frozen=True)
class DomainPlan:
    """Which availability domains to rotate through, and what the config said before the run."""

    count: int
    first: int  # 1-based index tried first: the one the config names (1 when unset)
    original: str | None  # the config value before the run; None when the key was not set

    def order(self) -> tuple[int, ...]:
        """One round, starting at `first`: with 3 domains and first 2, (2, 3, 1)."""
        return tuple((self.first - 1 + step) % self.count + 1 for step in range(self.count))


def plan_domains(configured: str | None, names: Sequence[str] | None, count: int) -> DomainPlan:
    """The rotation for `count` domains; `names` (from OCI, in order) resolve a configured name.

    Raises `OperatorError` when the configured value names no domain of the `count`."""
    if count < 1:
        raise OperatorError("the region lists no availability domain")
    raw = configured.strip() if configured is not None else None
    if raw is None or raw == "":
        return DomainPlan(count=count, first=1, original=configured)
    if raw.isdigit():
        index = int(raw)
        if not 1 <= index <= count:
            raise OperatorError(
                f"{AVAILABILITY_DOMAIN_KEY} is {raw}, but the region has {count} domain(s)"
            )
        return DomainPlan(count=count, first=index, original=configured)
    if names is None:
        raise OperatorError(
            f"{AVAILABILITY_DOMAIN_KEY} is the name {raw!r}; without asking OCI (--domains) its "
            "index is unknown: drop --domains, or set the key to an index (1, 2, 3)"
        )
    if raw not in names:
        raise OperatorError(
            f"{AVAILABILITY_DOMAIN_KEY} is {raw!r}, which is not one of {', '.join(names)}"
        )
    return DomainPlan(count=count, first=list(names).index(raw) + 1, original=configured)


def backoff_delay(wait_number: int, settings: RetrySettings, jitter: Jitter) -> float:
    """Seconds to wait before the next round (`wait_number` counts from 0): full jitter, a
    uniform draw between `min_delay` and a ceiling that doubles per wait up to `max_delay`."""
    base = settings.min_delay if settings.min_delay > 0 else _ZERO_MIN_BASE_SECONDS
    ceiling = min(settings.max_delay, base * 2 ** min(wait_number, _MAX_DOUBLINGS))
    ceiling = max(ceiling, settings.min_delay)
    return jitter.uniform(settings.min_delay, ceiling)


class _DomainSetting:
    """Moves `ai-swarm:availabilityDomain` and puts the user's value back on abandon."""

    def __init__(self, stack: DeployStack, plan: DomainPlan) -> None:
        self._stack = stack
        self._plan = plan
        self._applied = plan.first
        self._changed = False

    def apply(self, domain: int) -> None:
        if domain != self._applied:
            self._stack.set_config(AVAILABILITY_DOMAIN_KEY, str(domain))
            self._applied = domain
            self._changed = True

    def restore(self) -> str | None:
        """Put the original value back; returns a sentence saying so, or None if unchanged."""
        if not self._changed:
            return None
        if self._plan.original is None:
            self._stack.remove_config(AVAILABILITY_DOMAIN_KEY)
            return f"{AVAILABILITY_DOMAIN_KEY} removed again (it was not set)"
        self._stack.set_config(AVAILABILITY_DOMAIN_KEY, self._plan.original)
        return f"{AVAILABILITY_DOMAIN_KEY} restored to {self._plan.original}"


@dataclass
class _Progress:
    attempt: int = 0
    waits: int = 0
    tried_in_round: int = 0
    position: int = 0  # index into the endless repetition of DomainPlan.order()


class CapacityRetry:
    """The retry loop; every side effect goes through the injected seams."""

    def __init__(
        self,
        stack: DeployStack,
        plan: DomainPlan,
        settings: RetrySettings,
        *,
        clock: Clock,
        jitter: Jitter,
        console: Console,
        on_output: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self._stack = stack
        self._plan = plan
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._console = console
        self._on_output = on_output
        self._order = plan.order()
        self._setting = _DomainSetting(stack, plan)

    def run(self) -> int:
        """Exit status: 0 deployed, 1 stopped (an error waiting cannot fix, or Ctrl-C), 2 the
        deadline passed. The first attempt always runs; any later attempt, and any wait, must
        end before the deadline (so `--deadline 0s` is exactly one attempt)."""
        self._announce()
        deadline_at = self._clock.monotonic() + self._settings.deadline
        progress = _Progress()
        try:
            return self._loop(progress, deadline_at)
        except KeyboardInterrupt:
            self._console.print("[yellow]interrupted[/]: no further attempt")
            self._abandon()
            return EXIT_STOPPED

    def _announce(self) -> None:
        if self._plan.original is not None and self._plan.count > 1:
            order = ", ".join(str(domain) for domain in self._order)
            self._console.print(
                f"{AVAILABILITY_DOMAIN_KEY} is set to {escape(self._plan.original)}: it is rotated "
                f"({order}) while A1 capacity is out, and restored if the run is abandoned"
            )

    def _loop(self, progress: _Progress, deadline_at: float) -> int:
        while True:
            domain = self._order[progress.position % self._plan.count]
            self._setting.apply(domain)
            progress.attempt += 1
            failure = self._attempt()
            prefix = f"attempt {progress.attempt} · domain {domain}/{self._plan.count} · "
            if failure is None:
                self._console.print(prefix + "[green]deployed[/]")
                if self._plan.first == domain:
                    self._setting.restore()  # back to the user's own spelling of the same domain
                else:
                    self._console.print(
                        f"{AVAILABILITY_DOMAIN_KEY} stays {domain}: the host now lives there"
                    )
                return EXIT_DEPLOYED
            outcome = prefix + escape(failure.kind.value)
            if not failure.kind.retries:
                self._console.print(f"{outcome} · [red]stopped[/]: {escape(failure.detail)}")
                if failure.hint:
                    self._console.print(f"hint: {escape(failure.hint)}")
                self._abandon()
                return EXIT_STOPPED
            if failure.kind is FailureKind.CAPACITY:
                progress.tried_in_round += 1
                progress.position += 1
                if progress.tried_in_round < self._plan.count:
                    if self._clock.monotonic() >= deadline_at:
                        return self._deadline(outcome)
                    next_domain = self._order[progress.position % self._plan.count]
                    self._console.print(f"{outcome} · next: domain {next_domain} now")
                    continue
                progress.tried_in_round = 0
            delay = backoff_delay(progress.waits, self._settings, self._jitter)
            progress.waits += 1
            if self._clock.monotonic() + delay >= deadline_at:
                return self._deadline(outcome)
            next_domain = self._order[progress.position % self._plan.count]
            at = (self._clock.now() + timedelta(seconds=delay)).strftime("%H:%M:%S UTC")
            self._console.print(
                f"{outcome} · next: domain {next_domain} in {format_duration(delay)} ({at})"
            )
            self._clock.sleep(delay)

    def _attempt(self) -> Failure | None:
        try:
            self._stack.up(self._on_output)
        except PulumiUpError as failed:
            return classify(failed.output)
        return None

    def _deadline(self, outcome: str) -> int:
        self._console.print(f"{outcome} · [red]deadline reached[/]: no further attempt")
        self._abandon()
        return EXIT_DEADLINE

    def _abandon(self) -> None:
        said = self._setting.restore()
        if said:
            self._console.print(said)
