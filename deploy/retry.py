"""`python -m deploy up`: `pulumi up` until A1 capacity is found, the deadline passes, or an
error that waiting cannot fix stops it.

One round tries every availability domain once, starting from the one the config names; a
capacity failure moves straight on to the next domain, and only a round that found no capacity
anywhere waits (exponential back-off with full jitter, bounded by `--min-delay` and
`--max-delay`). Throttling (429) waits and retries the same domain. Anything else stops at once.

Once the stack's state holds the data volume, the domain is never rotated: a block volume attaches
only to an instance in its own availability domain, so capacity is retried there alone. Every
attempt previews first and stops on a plan that removes or swaps the instance, the data volume or
its attachment, unless the operator allowed it (`--allow-replace`).
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
from deploy.plan import domain_index, review
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
    names: tuple[str, ...] | None = None  # the region's domain names from OCI, in order
    pinned: str | None = None  # the data volume's domain: the only one tried

    def order(self) -> tuple[int, ...]:
        """One round, starting at `first`: with 3 domains and first 2, (2, 3, 1); only `first`
        when the data volume pins the domain."""
        if self.pinned is not None:
            return (self.first,)
        return tuple((self.first - 1 + step) % self.count + 1 for step in range(self.count))

    def spell(self, domain: int) -> str:
        """The config value for `domain`, spelled as the user spelled theirs: a name when they
        named the domain (and the names are known), else an index."""
        if domain == self.first and self.original is not None:
            return self.original
        named = self.original is not None and not self.original.strip().isdigit()
        if named and self.names is not None:
            return self.names[domain - 1]
        return str(domain)


def plan_domains(
    configured: str | None,
    names: Sequence[str] | None,
    count: int,
    volume_domain: str | None = None,
) -> DomainPlan:
    """The rotation for `count` domains; `names` (from OCI, in order) resolve a configured name.
    With `volume_domain` (the data volume's domain in the state) the plan is that domain alone.

    Raises `OperatorError` when the configured value names no domain of the `count`, or another
    domain than the data volume's."""
    plan = _configured_plan(configured, names, count)
    if volume_domain is None:
        return plan
    index = domain_index(volume_domain, names)
    if index is None:
        raise OperatorError(
            f"the data volume lives in {volume_domain!r}, which is not one of the region's "
            "availability domains" + ("" if names is not None else ": drop --domains")
        )
    if index != plan.first:
        said = "not set (domain 1)" if plan.original is None else plan.original.strip()
        raise OperatorError(
            f"{AVAILABILITY_DOMAIN_KEY} is {said}, but the data volume lives in "
            f"{volume_domain} (domain {index}) and cannot move: set {AVAILABILITY_DOMAIN_KEY} "
            f"to {index} (or {volume_domain})"
        )
    return DomainPlan(
        count=count, first=index, original=configured, names=plan.names, pinned=volume_domain
    )


def _configured_plan(configured: str | None, names: Sequence[str] | None, count: int) -> DomainPlan:
    if count < 1:
        raise OperatorError("the region lists no availability domain")
    known = tuple(names) if names is not None else None
    raw = configured.strip() if configured is not None else None
    if raw is None or raw == "":
        return DomainPlan(count=count, first=1, original=configured, names=known)
    if raw.isdigit():
        index = int(raw)
        if not 1 <= index <= count:
            raise OperatorError(
                f"{AVAILABILITY_DOMAIN_KEY} is {raw}, but the region has {count} domain(s)"
            )
        return DomainPlan(count=count, first=index, original=configured, names=known)
    if names is None:
        raise OperatorError(
            f"{AVAILABILITY_DOMAIN_KEY} is the name {raw!r}; without asking OCI (--domains) its "
            "index is unknown: drop --domains, or set the key to an index (1, 2, 3)"
        )
    if raw not in names:
        raise OperatorError(
            f"{AVAILABILITY_DOMAIN_KEY} is {raw!r}, which is not one of {', '.join(names)}"
        )
    return DomainPlan(
        count=count, first=list(names).index(raw) + 1, original=configured, names=known
    )


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
            self._stack.set_config(AVAILABILITY_DOMAIN_KEY, self._plan.spell(domain))
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
        allow_replace: bool = False,
    ) -> None:
        self._stack = stack
        self._plan = plan
        self._settings = settings
        self._clock = clock
        self._jitter = jitter
        self._console = console
        self._on_output = on_output
        self._allow_replace = allow_replace
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
        if self._plan.pinned is not None:
            self._console.print(
                f"the data volume lives in {escape(self._plan.pinned)} (domain "
                f"{self._plan.first}/{self._plan.count}): A1 capacity is retried in that domain "
                f"only; {AVAILABILITY_DOMAIN_KEY} is not rotated"
            )
        elif self._plan.original is not None and self._plan.count > 1:
            order = ", ".join(str(domain) for domain in self._order)
            self._console.print(
                f"{AVAILABILITY_DOMAIN_KEY} is set to {escape(self._plan.original)}: it is rotated "
                f"({order}) while A1 capacity is out, and restored if the run is abandoned"
            )

    def _loop(self, progress: _Progress, deadline_at: float) -> int:
        rotation = len(self._order)
        while True:
            domain = self._order[progress.position % rotation]
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
                        f"{AVAILABILITY_DOMAIN_KEY} stays {escape(self._plan.spell(domain))}: "
                        "the host now lives there"
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
                if progress.tried_in_round < rotation:
                    if self._clock.monotonic() >= deadline_at:
                        return self._deadline(outcome)
                    next_domain = self._order[progress.position % rotation]
                    self._console.print(f"{outcome} · next: domain {next_domain} now")
                    continue
                progress.tried_in_round = 0
            delay = backoff_delay(progress.waits, self._settings, self._jitter)
            progress.waits += 1
            if self._clock.monotonic() + delay >= deadline_at:
                return self._deadline(outcome)
            next_domain = self._order[progress.position % rotation]
            at = (self._clock.now() + timedelta(seconds=delay)).strftime("%H:%M:%S UTC")
            self._console.print(
                f"{outcome} · next: domain {next_domain} in {format_duration(delay)} ({at})"
            )
            self._clock.sleep(delay)

    def _attempt(self) -> Failure | None:
        """Preview, then `up` if the plan keeps the host and its data (or that was allowed)."""
        try:
            preview = self._stack.preview(self._on_output)
        except PulumiUpError as failed:
            return classify(failed.output)
        checked = review(preview)
        if not checked.safe:
            allowed = self._allow_replace
            self._console.print(
                "preview: the plan "
                + ("replaces or deletes" if checked.dangerous else "cannot be checked")
                + (" (allowed by --allow-replace)" if allowed else "")
                + ":"
            )
            for line in (*checked.dangerous, *filter(None, [checked.unreadable])):
                self._console.print(f"  {escape(line)}")
            if not allowed:
                return Failure(
                    FailureKind.REFUSED,
                    "nothing was changed",
                    hint="`pulumi preview --diff` shows why; if that is meant, run again with "
                    "--allow-replace (Pulumi still never deletes the protected data volume)",
                )
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
