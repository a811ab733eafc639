"""A LangGraph checkpointer on plain Redis whose conversation is a chat history.

Example::

    from redis_chat_history.checkpoint import RedisCheckpointSaver

    with RedisCheckpointSaver.from_conn_string("redis://localhost:6379/0") as saver:
        agent = create_agent(model, tools, checkpointer=saver)

Storage (see :mod:`.lua`): all keys of a thread share its history key's Cluster slot.
The root namespace's ``messages`` are the thread's history list (each message stored
once); other channels are blobs per (channel, version), written only when they change.
"""

from redis_chat_history.checkpoint.saver import RedisCheckpointSaver
from redis_chat_history.checkpoint.values import BrokenCheckpointError

__all__ = ["BrokenCheckpointError", "RedisCheckpointSaver"]
