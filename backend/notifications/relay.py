"""The outbox relay: delivers outbox rows after their transaction committed.

One pass (`Relay.run_once`) claims up to ``batch_size`` due pending rows with ``FOR UPDATE SKIP
LOCKED`` in one transaction, works out each row's deliveries (`backend.notifications.fanout`),
sends them through the channels (one batch per channel, concurrently), and records the outcome in
the same transaction:

- every delivery accepted (or its token gone, or nothing to send) → ``sent`` (with a ``note``
  saying why nothing was sent, e.g. a channel not configured);
- a transient failure (429/503/network) → ``attempts + 1`` and ``available_at`` moved by an
  exponential back-off with full jitter (``uniform(0, min(cap, base * 2**(attempts-1)))``), never
  sooner than the provider's Retry-After; after ``max_attempts`` → ``dead`` with ``last_error``;
- a permanent failure (a malformed message, an unknown topic) → ``dead`` with ``last_error``;
- a device token FCM answers UNREGISTERED / INVALID_ARGUMENT (token) / SENDER_ID_MISMATCH for,
  or a Web Push subscription answered 404/410, is deleted;
- a device over its FCM rate (`push.ratelimit`) or a user in quiet hours → ``available_at``
  moved to when it may go, without counting an attempt.

Delivered targets of a fan-out are kept in ``progress``, so a retry sends only what is missing.

Delivery is at-least-once: a process that dies after sending and before its commit leaves the
row pending (its lock goes with its connection), and the next pass sends it again with the same
dedupe key (FCM/Web Push ``data.dedupe_key``, e-mail Message-ID and ``X-Fieldcrm-Dedupe-Key``,
SMS ``Idempotency-Key``), so receivers can drop the repeat.

`Relay.serve` is the long-running loop of the worker process: it LISTENs on ``fieldcrm_outbox``
(an outbox insert trigger notifies it on commit), drains, and sleeps until the next notification,
the next due row or ``poll_s`` — so a committed message leaves within milliseconds, and after a
lost connection (a database restart) it reconnects and polls meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import Clock
from backend.notifications import devices
from backend.notifications.channels import Channels
from backend.notifications.fanout import Delivery, Plan, plan_rows
from backend.notifications.models import OutboxMessage, OutboxStatus
from push.core import Outcome, Result
from push.ratelimit import FCM_DEVICE_LIMITS, RateLimiter

log = logging.getLogger("fieldcrm.relay")

WAKE_CHANNEL = "fieldcrm_outbox"
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class RelayConfig:
    """How the relay paces itself."""

    max_attempts: int = 8
    batch_size: int = 50
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 3600.0
    poll_s: float = 5.0


@dataclass
class PassStats:
    """What one pass did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    delayed: int = 0
    deliveries: int = 0

    def add(self, other: PassStats) -> None:
        """Accumulate another pass."""
        for name in ("claimed", "sent", "retried", "dead", "delayed", "deliveries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Outcome:
    done: list[str] = field(default_factory=list)
    retry: list[tuple[str, Result]] = field(default_factory=list)
    permanent: list[tuple[str, Result]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    wait_s: float = 0.0


def backoff_s(attempts: int, config: RelayConfig, rng: random.Random) -> float:
    """Full-jitter exponential back-off after the ``attempts``-th failed attempt."""
    ceiling = min(config.backoff_cap_s, config.backoff_base_s * 2 ** max(attempts - 1, 0))
    return rng.uniform(0.0, ceiling)


class Relay:
    """Delivers due outbox rows through `Channels`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        channels: Channels,
        clock: Clock,
        config: RelayConfig | None = None,
        *,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        """`rng` draws the jitter (seeded in tests); `limiter` keeps FCM's per-device rates."""
        self.sessionmaker = sessionmaker
        self.channels = channels
        self.clock = clock
        self.config = config or RelayConfig()
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter
        self.limiter = limiter if limiter is not None else RateLimiter(FCM_DEVICE_LIMITS)
        self.wake = asyncio.Event()

    # -- one pass ----------------------------------------------------------------------------

    async def run_once(self) -> PassStats:
        """Claim one batch of due rows, deliver them and record the outcome (one transaction)."""
        stats = PassStats()
        async with self.sessionmaker() as session, session.begin():
            now = self.clock.now()
            rows = list(
                (
                    await session.scalars(
                        select(OutboxMessage)
                        .where(
                            OutboxMessage.status == OutboxStatus.PENDING,
                            OutboxMessage.available_at <= now,
                        )
                        .order_by(OutboxMessage.available_at, OutboxMessage.id)
                        .limit(self.config.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not rows:
                return stats
            stats.claimed = len(rows)
            plans = await plan_rows(session, rows, self.channels, now)
            results = await self._send(plans, now)
            gone_devices: list[uuid.UUID] = []
            gone_subscriptions: list[uuid.UUID] = []
            for row in rows:
                plan = plans[row.id]
                outcome = results.get(row.id, _Outcome())
                stats.deliveries += len(outcome.done)
                self._record(row, plan, outcome, now, stats)
                gone_devices.extend(plan.gone_devices)
                gone_subscriptions.extend(plan.gone_subscriptions)
            await devices.remove_devices(session, gone_devices)
            await devices.remove_subscriptions(session, gone_subscriptions)
        return stats

    async def drain(self, max_passes: int = 1000) -> PassStats:
        """Passes until a batch comes back short (nothing more is due now)."""
        total = PassStats()
        for _ in range(max_passes):
            stats = await self.run_once()
            total.add(stats)
            if stats.claimed < self.config.batch_size:
                break
        return total

    async def next_due_in(self) -> float | None:
        """Seconds until the earliest pending row is due (0 when one is), None when none is."""
        async with self.sessionmaker() as session:
            earliest = await session.scalar(
                select(func.min(OutboxMessage.available_at)).where(
                    OutboxMessage.status == OutboxStatus.PENDING
                )
            )
        if earliest is None:
            return None
        return max((earliest - self.clock.now()).total_seconds(), 0.0)

    async def _send(self, plans: dict[uuid.UUID, Plan], now: datetime) -> dict[uuid.UUID, _Outcome]:
        by_channel: dict[str, list[tuple[uuid.UUID, Delivery]]] = defaultdict(list)
        outcomes: dict[uuid.UUID, _Outcome] = defaultdict(_Outcome)
        for row_id, plan in plans.items():
            for delivery in plan.deliveries:
                if delivery.channel == "fcm":
                    wait = self.limiter.acquire(delivery.rate_key or delivery.target)
                    if wait > 0:
                        outcome = outcomes[row_id]
                        outcome.wait_s = max(outcome.wait_s, wait)
                        continue
                by_channel[delivery.channel].append((row_id, delivery))
        channel_items = list(by_channel.items())
        answers = await asyncio.gather(
            *(self._send_channel(name, items) for name, items in channel_items)
        )
        for (_name, items), results in zip(channel_items, answers, strict=True):
            for (row_id, delivery), result in zip(items, results, strict=True):
                outcome = outcomes[row_id]
                plan = plans[row_id]
                if result.outcome is Outcome.OK:
                    outcome.done.append(delivery.target)
                elif result.outcome is Outcome.UNREGISTERED:
                    outcome.gone.append(delivery.target)
                    if delivery.device_id is not None:
                        plan.gone_devices.append(delivery.device_id)
                    elif delivery.subscription_id is not None:
                        plan.gone_subscriptions.append(delivery.subscription_id)
                    else:  # an address cannot be "unregistered": treat as permanent
                        outcome.permanent.append((delivery.target, result))
                elif result.outcome is Outcome.RETRY:
                    outcome.retry.append((delivery.target, result))
                else:
                    outcome.permanent.append((delivery.target, result))
        return outcomes

    async def _send_channel(
        self, name: str, items: Sequence[tuple[uuid.UUID, Delivery]]
    ) -> list[Result]:
        sender = getattr(self.channels, name)
        messages = [delivery.message for _, delivery in items]
        try:
            results: list[Result] = await sender.send(messages)
        except Exception as exc:  # a sender bug must not lose the batch: retry it later
            log.exception("sender %s failed", name)
            return [Result.retry("SENDER_ERROR", f"{type(exc).__name__}: {exc}")] * len(messages)
        if len(results) != len(messages):
            return [Result.retry("SENDER_ERROR", "wrong number of results")] * len(messages)
        return results

    def _record(
        self, row: OutboxMessage, plan: Plan, outcome: _Outcome, now: datetime, stats: PassStats
    ) -> None:
        if outcome.done:
            row.progress = [*row.progress, *outcome.done]
        if plan.dead_reason is not None:
            row.status = OutboxStatus.DEAD
            row.attempts += 1
            row.last_error = plan.dead_reason[:MAX_ERROR_LENGTH]
            stats.dead += 1
            return
        if plan.delay_until is not None and not plan.deliveries:
            row.available_at = plan.delay_until
            row.note = plan.note
            stats.delayed += 1
            return
        if outcome.permanent:
            row.status = OutboxStatus.DEAD
            row.attempts += 1
            row.last_error = _errors(outcome.permanent + outcome.retry)
            stats.dead += 1
            return
        if outcome.retry:
            row.attempts += 1
            row.last_error = _errors(outcome.retry)
            if row.attempts >= self.config.max_attempts:
                row.status = OutboxStatus.DEAD
                stats.dead += 1
                return
            wait = backoff_s(row.attempts, self.config, self.rng)
            hinted = [r.retry_after for _, r in outcome.retry if r.retry_after is not None]
            wait = max([wait, outcome.wait_s, *hinted])
            row.available_at = now + timedelta(seconds=wait)
            stats.retried += 1
            return
        if outcome.wait_s > 0:
            row.available_at = now + timedelta(seconds=outcome.wait_s)
            stats.delayed += 1
            return
        row.status = OutboxStatus.SENT
        row.sent_at = now
        notes = [plan.note] if plan.note else []
        if outcome.gone:
            notes.append(f"removed, the provider says they are gone: {', '.join(outcome.gone)}")
        row.note = "; ".join(notes) or None
        stats.sent += 1

    # -- the long-running loop ---------------------------------------------------------------

    async def serve(self, dsn: str, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set: woken by NOTIFY on commit, or by the next due row."""
        listener = _Listener(dsn, self.wake)
        try:
            while not stop.is_set():
                await listener.ensure()
                self.wake.clear()
                try:
                    stats = await self.drain()
                    if stats.claimed:
                        log.info(
                            "relay: %d claimed, %d sent, %d retried, %d dead, %d delayed",
                            stats.claimed,
                            stats.sent,
                            stats.retried,
                            stats.dead,
                            stats.delayed,
                        )
                    due = await self.next_due_in()
                except (OSError, DBAPIError, InterfaceError, OperationalError) as exc:
                    log.warning("relay: database unavailable (%s); retrying", type(exc).__name__)
                    due = 1.0
                except Exception:  # a bug must not stop delivery for good: log, try again
                    log.exception("relay: pass failed")
                    due = 1.0
                timeout = self.config.poll_s if due is None else min(due, self.config.poll_s)
                if not listener.connected:
                    timeout = min(timeout, 1.0)
                if timeout <= 0:
                    continue
                await _wait_any(self.wake, stop, timeout)
        finally:
            await listener.close()


class _Listener:
    """A dedicated asyncpg connection LISTENing on the wake channel; reconnects when lost."""

    def __init__(self, dsn: str, wake: asyncio.Event) -> None:
        self.dsn = dsn
        self.wake = wake
        self.connection: asyncpg.Connection | None = None

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed()

    async def ensure(self) -> None:
        if self.connected:
            return
        await self.close()
        try:
            connection = await asyncpg.connect(self.dsn, timeout=5)
            await connection.add_listener(WAKE_CHANNEL, self._notified)
            connection.add_termination_listener(self._terminated)
        except Exception as exc:  # refused, unreachable, restarting: poll meanwhile
            log.warning("relay: cannot listen (%s); polling meanwhile", type(exc).__name__)
            return
        self.connection = connection
        # Rows committed while we were not listening are due now: look at once.
        self.wake.set()

    def _notified(self, *_: object) -> None:
        self.wake.set()

    def _terminated(self, *_: object) -> None:
        self.wake.set()

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), timeout=2)


async def _wait_any(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _errors(failures: list[tuple[str, Result]]) -> str:
    text = "; ".join(
        f"{target}: {r.error_code or r.outcome.value} {r.error_message or ''}".strip()
        for target, r in failures
    )
    return text[:MAX_ERROR_LENGTH]
