"""The exceptions this package raises.

Every error is a :class:`ChatHistoryError` and also subclasses the builtin it
refines, so ``except ValueError`` or ``except ConnectionError`` in existing code
keeps working. Messages name what was wrong and where (key, position, line, host)
and never contain a password.

Example::

    try:
        history.messages
    except CorruptHistoryError as error:
        print(error.key, error.index)
"""

from __future__ import annotations


class ChatHistoryError(Exception):
    """Base class of every error this package raises."""


class InvalidArgumentError(ChatHistoryError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class InvalidArgumentTypeError(ChatHistoryError, TypeError):
    """An argument has the wrong type (for example a message that is not a BaseMessage)."""


class InvalidURLError(InvalidArgumentError):
    """A connection url cannot be parsed or uses an unknown scheme or option."""


class MessageEncodeError(ChatHistoryError, TypeError):
    """A message of a batch cannot be serialised; nothing of the batch was written."""

    def __init__(self, message: str, *, position: int) -> None:
        super().__init__(message)
        self.position = position


class ImportFormatError(InvalidArgumentError):
    """A line of an import file is not a message of the export format."""

    def __init__(self, message: str, *, line: int, session_id: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.session_id = session_id


class CorruptHistoryError(ChatHistoryError, ValueError):
    """A stored list element is not a valid message (the history is never silently shortened)."""

    def __init__(self, message: str, *, key: str, index: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        #: LRANGE index of the bad element (0 = newest), when known.
        self.index = index


class WrongTypeError(CorruptHistoryError):
    """The history key holds a Redis value that is not a list."""


class RedisUnavailableError(ChatHistoryError, ConnectionError):
    """The Redis server cannot be reached (names host:port, never credentials)."""


class PoolExhaustedError(RedisUnavailableError):
    """Every pooled connection stayed busy for the pool's timeout (names the pool size)."""


class WriteOutcomeUnknownError(RedisUnavailableError):
    """The connection failed after a write that cannot be safely re-sent was sent.

    The write may or may not have been applied (it is never applied twice by this
    package). Only writes without a writer token raise it: the plain commands used
    when the server refuses scripts.
    """


class PermissionDeniedError(ChatHistoryError, PermissionError):
    """The Redis user lacks a permission (ACL) the operation needs."""


class ReplicationError(ChatHistoryError, TimeoutError):
    """A write was applied on the master but fewer replicas than asked acknowledged it in time."""

    def __init__(self, message: str, *, acknowledged: int, requested: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged
        self.requested = requested


class CommandError(ChatHistoryError, RuntimeError):
    """Redis answered an operation with an error not covered by a more precise class."""


class WriteRefusedError(CommandError):
    """Redis refused a write and applied nothing of it; the same write may succeed later."""


class OutOfMemoryError(WriteRefusedError):
    """Redis is at ``maxmemory`` with a policy that refuses writes (OOM); nothing was written."""


class NotEnoughReplicasError(WriteRefusedError):
    """Redis refused a write: fewer replicas than ``min-replicas-to-write`` (NOREPLICAS)."""


class EmbeddedServerError(ChatHistoryError, RuntimeError):
    """The embedded redis-server cannot be found or started."""
