"""The process's one pub/sub connection: wake-ups and cancel signals from every other
process, and change notifications for the logs this process follows.

Followers never block a Redis connection each (ten thousand open streams would need ten
thousand connections): they register a `Watch` on their log's notification channel and
read the log only when it changes. A watch is trustworthy only while its subscription is
confirmed on a live connection; after a reconnect every watch is told to re-read, since
notifications published meanwhile are gone.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from garrison.broker.redis._layout import Keys, parse_cancel
from garrison.broker.redis._link import ERRORS
from garrison.broker.redis._outage import BACKOFF_START_SECONDS, Outage, next_backoff
from garrison.domain.runs import CancelAction

logger = logging.getLogger("garrison.broker.redis")

# How long one read waits before looping; connection loss surfaces as an error anyway.
_READ_SECONDS = 5.0


class Watch:
    """One follower's interest in one notification channel."""

    __slots__ = ("_release", "changed", "channel", "confirmed", "payload")

    def __init__(self, release: Callable[["Watch"], None]) -> None:
        self.channel = b""
        self.payload: bytes | None = None  # the last non-empty notification (a run's output)
        self.changed = asyncio.Event()  # set on every notification: re-read the log
        # True while notifications are known to arrive; until then readers poll.
        self.confirmed = False
        self._release = release

    def close(self) -> None:
        self._release(self)


class Listener:
    """Keeps the subscriptions, resubscribing with backoff whenever the connection is lost."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        *,
        origin: str,
        io_timeout: float,
        outage: Outage,
        on_wake: Callable[[], None],
        on_cancel: Callable[[str, CancelAction], None],
    ) -> None:
        self._client = client
        self._keys = keys
        self._origin = origin
        self._io_timeout = io_timeout
        self._outage = outage
        self._on_wake = on_wake
        self._on_cancel = on_cancel
        self._signals = {keys.work_channel.encode(), keys.cancel_channel.encode()}
        self._watches: dict[bytes, set[Watch]] = {}
        self._pubsub: PubSub | None = None  # set while a connection is subscribed
        self._sending = asyncio.Lock()  # (un)subscribes reach Redis in the order they were made
        self._confirmed_signals: set[bytes] = set()
        self.subscribed = asyncio.Event()
        self.attempted = asyncio.Event()  # the first subscription attempt has an outcome
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="redis-broker-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for watches in self._watches.values():
            for watch in watches:
                watch.changed.set()  # followers wake up and find the broker closed

    # Watches -------------------------------------------------------------------------
    async def watch(self, channel: str) -> Watch:
        """Register interest in `channel`; the watch is confirmed (and `changed` set, so
        the follower re-reads) once Redis acknowledges the subscription."""
        name = channel.encode()
        watch = Watch(self._release)
        watch.channel = name
        watches = self._watches.get(name)
        if watches:
            watch.confirmed = next(iter(watches)).confirmed
            watches.add(watch)
            return watch
        self._watches[name] = {watch}
        await self._send("SUBSCRIBE", name)
        return watch

    def _release(self, watch: Watch) -> None:
        watches = self._watches.get(watch.channel)
        if watches is None or watch not in watches:
            return
        watches.discard(watch)
        if not watches:
            del self._watches[watch.channel]
            task = asyncio.ensure_future(self._send("UNSUBSCRIBE", watch.channel))
            task.add_done_callback(_ignore_result)

    async def _send(self, command: str, name: bytes) -> None:
        """Send one (UN)SUBSCRIBE in order with the others; a channel watched again by the
        time its UNSUBSCRIBE gets its turn stays subscribed."""
        async with self._sending:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the listen loop subscribes every watched channel when it connects
            if command == "UNSUBSCRIBE" and name in self._watches:
                return
            try:
                async with asyncio.timeout(self._io_timeout):
                    if command == "SUBSCRIBE":
                        await pubsub.subscribe(name)
                    else:
                        await pubsub.unsubscribe(name)
            except ERRORS:  # the listen loop sees the broken connection and resubscribes
                pass

    # The connection ------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        backoff = BACKOFF_START_SECONDS
        connected_before = False
        while True:
            pubsub = self._client.pubsub()
            try:
                async with self._sending, asyncio.timeout(self._io_timeout):
                    await pubsub.subscribe(*self._signals, *self._watches)
                    self._pubsub = pubsub
                while True:
                    # redis-py may reconnect transparently inside this read; it then
                    # resubscribes every channel, and the confirmations tell us so.
                    message = await pubsub.get_message(timeout=_READ_SECONDS)
                    if message is not None and self._handle(message, connected_before):
                        connected_before, backoff = True, BACKOFF_START_SECONDS
            except Exception as exc:  # the listener must outlive every failure but cancel
                self._lost()
                self._outage.failed("listening for signals and stream notifications", exc)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            await asyncio.sleep(backoff)
            backoff = next_backoff(backoff)

    def _lost(self) -> None:
        self.subscribed.clear()
        self.attempted.set()
        self._confirmed_signals.clear()
        for watches in self._watches.values():
            for watch in watches:
                watch.confirmed = False
                watch.changed.set()  # poll from now on, starting with a read now

    def _handle(self, message: dict[str, Any], connected_before: bool) -> bool:
        """Dispatch one pub/sub message; True when it confirms the signal subscriptions."""
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            self._dispatch(channel, message["data"])
            return False
        if kind != "subscribe":
            return False
        watches = self._watches.get(channel)
        if watches is not None:
            for watch in watches:
                watch.confirmed = True
                watch.changed.set()  # anything published before the subscription took
        if channel not in self._signals:
            return False
        self._confirmed_signals.add(channel)
        if self._confirmed_signals != self._signals:
            return False
        self.subscribed.set()
        self.attempted.set()
        self._outage.succeeded()
        if connected_before:
            self._on_wake()  # runs created while we were deaf still wait in the queue
        return True

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        watches = self._watches.get(channel)
        if watches is not None:
            for watch in watches:
                if payload:
                    watch.payload = payload
                watch.changed.set()
            return
        if channel == self._keys.work_channel.encode():
            if payload != self._origin.encode():  # this process woke itself already
                self._on_wake()
            return
        if channel != self._keys.cancel_channel.encode():
            return  # a notification that raced an unsubscribe
        parsed = parse_cancel(payload)
        if parsed is None:
            logger.warning("ignoring a malformed cancel signal %r", payload[:200])
        elif parsed[0] != self._origin:
            self._on_cancel(parsed[1], parsed[2])


def _ignore_result(task: "asyncio.Future[None]") -> None:
    if not task.cancelled():
        task.exception()
