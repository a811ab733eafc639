"""One session of a transfer: read from a source as a snapshot, or staged into a target.

:class:`SessionReader` reads a history as one consistent snapshot, in windows of
:data:`WINDOW` messages (one LRANGE when it fits, else a server-side COPY read in
windows, dropped at the end); :class:`SessionStaging` pushes batches onto the run's
staging list and commits it as the history in one script (operations/transfer_plans.py).
transfer.py drives them for export, import and copy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from redis_chat_history import operations
from redis_chat_history.codec import decode_payload, element_json, message_from_payload
from redis_chat_history.errors import (
    ChatHistoryError,
    CorruptHistoryError,
    InvalidArgumentTypeError,
)
from redis_chat_history.execution import run
from redis_chat_history.provider import ClientProvider
from redis_chat_history.settings import Settings

#: Messages read or staged per round trip (and held in memory at once).
WINDOW = 1000

logger = logging.getLogger("redis_chat_history")


@dataclass(frozen=True)
class Endpoint:
    """What a transfer needs of a store: its clients, its settings, its session listing."""

    provider: ClientProvider
    settings: Settings
    list_sessions: Callable[[], Iterable[str]]

    def session_ids(self, session_ids: Iterable[str] | None) -> Iterable[str]:
        if session_ids is None:
            return self.list_sessions()
        if isinstance(session_ids, str):
            raise InvalidArgumentTypeError("session_ids must be a list of session ids, not a str")
        return session_ids


# -- reading a session as one snapshot ---------------------------------------------------
class SessionReader:
    """One session of a source, read as one consistent snapshot in windows (oldest first)."""

    def __init__(self, side: Endpoint, key: str, run_id: str) -> None:
        self.side = side
        self.key = key
        self.run_id = run_id
        plan = operations.snapshot_plan(key, run_id, window=WINDOW)
        self.snapshot = run(side.provider, plan)
        self.corrupt_skipped = 0

    @property
    def expire_ms(self) -> int | None:
        """PTTL at the snapshot: None never expires, 0 expires now (see the module docstring)."""
        return self.snapshot.expire_ms

    def expired(self) -> bool:
        """True (and the snapshot dropped) when the session was read in its last millisecond."""
        if self.snapshot.expire_ms != 0:
            return False
        self._drop()
        return True

    def _drop(self) -> None:
        if self.snapshot.copied:
            with contextlib.suppress(ChatHistoryError):  # it expires by itself anyway
                run(self.side.provider, operations.drop_snapshot_plan(self.key, self.run_id))

    def _raw_windows(self) -> Generator[list[bytes]]:
        snapshot = self.snapshot
        if not snapshot.copied:
            for start in range(0, len(snapshot.elements), WINDOW):
                yield snapshot.elements[start : start + WINDOW]
            return
        try:
            yield snapshot.elements
            start = len(snapshot.elements)
            while start < snapshot.length:
                plan = operations.snapshot_window_plan(
                    self.key, self.run_id, length=snapshot.length, start=start, count=WINDOW
                )
                window = run(self.side.provider, plan)
                yield window
                start += len(window)
        finally:
            self._drop()

    def windows(self) -> Generator[list[tuple[bytes, bytes | str, dict[str, Any]]]]:
        """Windows of (stored element, its JSON, its payload), corrupt ones checked."""
        length = self.snapshot.length
        skip = self.side.settings.skip_corrupt
        # closing: the snapshot key is deleted however the caller stops reading
        with contextlib.closing(self._raw_windows()) as raw_windows:
            yield from self._checked(raw_windows, length, skip)

    def _checked(
        self, raw_windows: Iterator[list[bytes]], length: int, skip: bool
    ) -> Iterator[list[tuple[bytes, bytes | str, dict[str, Any]]]]:
        position = 0
        for raw_window in raw_windows:
            checked = []
            for raw in raw_window:
                try:
                    text = element_json(raw)
                    payload = decode_payload(text)
                    message_from_payload(payload)  # what a read would refuse is corrupt
                except ValueError as error:
                    index = length - 1 - position
                    description = (
                        f"{self.key!r}: list element {index} (LRANGE index, 0 = newest; "
                        f"message {position} from the oldest) is not a stored message: {error}"
                    )
                    if not skip:
                        raise CorruptHistoryError(description, key=self.key, index=index) from error
                    logger.warning("skipping corrupt element: %s", description)
                    self.corrupt_skipped += 1
                else:
                    checked.append((raw, text, payload))
                position += 1
            if checked:
                yield checked


# -- staging into a target -----------------------------------------------------------------
class SessionStaging:
    """One session being written to a target: batches staged, committed at its end."""

    def __init__(self, side: Endpoint, key: str, run_id: str, overwrite: bool) -> None:
        self.side = side
        self.key = key
        self.run_id = run_id
        self.overwrite = overwrite
        self.count = 0
        self.staged = 0
        self.batch: list[bytes] = []
        # A session that already holds messages is kept: skip the staging work (the
        # commit checks again, atomically).
        self.skip = not overwrite and run(side.provider, operations.count_plan(key)) > 0

    def add(self, element: bytes) -> None:
        self.count += 1
        if self.skip:
            return
        self.batch.append(element)
        if len(self.batch) >= WINDOW:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            plan = operations.stage_plan(self.key, self.run_id, self.batch, before=self.staged)
            self.staged = run(self.side.provider, plan, self.side.settings.wait)
            self.batch = []

    def commit(self, expire_ms: int | None) -> bool:
        """True when the session was written, False when the target's was kept.

        ``expire_ms``: the source's remaining time (> 0), None when it never expires
        (then the target's ``ttl`` applies, if any).
        """
        if self.skip:
            return False
        self.flush()
        ttl = self.side.settings.ttl
        expiry = expire_ms if expire_ms is not None else (ttl * 1000 if ttl else None)
        plan = operations.commit_stage_plan(
            self.key,
            self.run_id,
            staged=self.staged,
            overwrite=self.overwrite,
            expire_ms=expiry,
            remember_seconds=self.side.provider.policy.window_seconds,
        )
        return run(self.side.provider, plan, self.side.settings.wait)

    def discard(self) -> None:
        if self.staged:
            with contextlib.suppress(ChatHistoryError):  # it expires by itself anyway
                run(self.side.provider, operations.discard_stage_plan(self.key, self.run_id))
