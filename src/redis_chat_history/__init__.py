"""redis-chat-history: a maintained, drop-in Redis chat message history for LangChain.

Change one import line::

    # from langchain_community.chat_message_histories import RedisChatMessageHistory
    from redis_chat_history import RedisChatMessageHistory

Every history the old class stored reads back equal, and the old class reads
what this package writes (unless ``compress=True``).
"""

from redis_chat_history.errors import (
    ChatHistoryError,
    CommandError,
    CorruptHistoryError,
    EmbeddedServerError,
    ImportFormatError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidURLError,
    MessageEncodeError,
    NotEnoughReplicasError,
    OutOfMemoryError,
    PermissionDeniedError,
    PoolExhaustedError,
    RedisUnavailableError,
    ReplicationError,
    WriteOutcomeUnknownError,
    WriteRefusedError,
    WrongTypeError,
)
from redis_chat_history.history import RedisChatMessageHistory
from redis_chat_history.provider import close_shared_clients
from redis_chat_history.retry import RetryPolicy
from redis_chat_history.store import ExportResult, RedisChatStore, StoreStats, TransferResult
from redis_chat_history.urls import parse_url

__all__ = [
    "ChatHistoryError",
    "CommandError",
    "CorruptHistoryError",
    "EmbeddedServerError",
    "ExportResult",
    "ImportFormatError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidURLError",
    "MessageEncodeError",
    "NotEnoughReplicasError",
    "OutOfMemoryError",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "RedisChatMessageHistory",
    "RedisChatStore",
    "RedisUnavailableError",
    "ReplicationError",
    "RetryPolicy",
    "StoreStats",
    "TransferResult",
    "WriteOutcomeUnknownError",
    "WriteRefusedError",
    "WrongTypeError",
    "close_shared_clients",
    "parse_url",
]
__version__ = "0.1.0"
