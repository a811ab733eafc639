"""A background stream of writes for failure tests, and the exactly-once check after it.

Example::

    with WriteStream(histories) as stream:
        server.kill(); ...
    stream.check_exactly_once()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from types import TracebackType

from langchain_core.messages import HumanMessage

from redis_chat_history import RedisChatMessageHistory, RedisUnavailableError, ReplicationError


class WriteStream:
    """Appends numbered messages round-robin to ``histories`` until the block ends.

    A write that returned is *acknowledged*; one that raised the library's
    connection or replication error is *failed* (it may or may not be stored).
    """

    def __init__(self, histories: list[RedisChatMessageHistory], pause_after_error: float = 0.01):
        self.histories = histories
        self.pause_after_error = pause_after_error
        self.acknowledged: list[str] = []
        self.failed: list[str] = []
        self.errors: list[Exception] = []
        #: An error of another kind, which ends the stream and fails the test at its end.
        self.unexpected: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded)

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as error:
            self.unexpected = error

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            text = f"m{i}"
            try:
                self.histories[i % len(self.histories)].add_message(HumanMessage(text))
                self.acknowledged.append(text)
            except (RedisUnavailableError, ReplicationError) as error:
                self.failed.append(text)
                self.errors.append(error)
                time.sleep(self.pause_after_error)
            i += 1

    def __enter__(self) -> WriteStream:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self.unexpected is not None and error is None:
            raise AssertionError(f"the write stream died: {self.unexpected!r}") from self.unexpected

    def stored(self) -> list[str]:
        return [str(m.content) for history in self.histories for m in history.messages]

    def check_exactly_once(self) -> None:
        """Every acknowledged write stored once; nothing twice; nothing never attempted;
        and each history in its writer's order."""
        stored = self.stored()
        assert [text for text, n in Counter(stored).items() if n > 1] == []
        assert set(self.acknowledged) <= set(stored)
        assert set(stored) <= set(self.acknowledged) | set(self.failed)
        count = len(self.histories)
        for index, history in enumerate(self.histories):
            numbers = [int(str(m.content)[1:]) for m in history.messages]
            assert numbers == sorted(numbers) and all(n % count == index for n in numbers)


class AsyncWriteStream(WriteStream):
    """The same stream through the async methods: one task per history, on its own loop."""

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        count = len(self.histories)

        async def writer(index: int) -> None:
            i = index
            while not self._stop.is_set():
                text = f"m{i}"
                try:
                    await self.histories[index].aadd_messages([HumanMessage(text)])
                    self.acknowledged.append(text)
                except (RedisUnavailableError, ReplicationError) as error:
                    self.failed.append(text)
                    self.errors.append(error)
                    await asyncio.sleep(self.pause_after_error)
                i += count

        await asyncio.gather(*(writer(index) for index in range(count)))
