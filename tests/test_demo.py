"""``make demo`` (``redis-chat-history demo``): its agent's memory is the checkpointer.

Two runs on the embedded Redis (tests/test_cli.py checks what they print); then the data
folder is opened again as ``embedded:///folder``: the thread ``demo`` has the checkpointer's
keys and history (time travel works), its latest state is the stored chat history, and
nothing else was written (no second copy of the conversation).
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import RedisChatStore
from redis_chat_history.demo import SCRIPT, build_agent
from redis_chat_history.slots import is_companion_key
from tests.servers import wait_until
from tests.test_cli import cli


def test_two_demo_runs_are_one_checkpointed_thread(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for run in range(2):
        result = cli("--data-dir", str(data), "demo", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"turns {3 * run + 1}-{3 * run + 3}" in result.stdout
    socket = data / "redis.sock"
    wait_until(lambda: not socket.exists(), 60, "the embedded server to stop after the command")

    store = RedisChatStore(f"embedded://{data}")
    agent = build_agent(store)
    config = {"configurable": {"thread_id": "demo"}}
    state = agent.get_state(config)
    messages = state.values["messages"]
    assert [m.content for m in messages if isinstance(m, HumanMessage)] == SCRIPT
    assert any(isinstance(m, AIMessage) and m.tool_calls for m in messages)
    assert store.history("demo").messages == messages  # the state is the chat history
    history = list(agent.get_state_history(config))
    assert len(history) >= 6 * 3  # 3 to 5 checkpoints a turn: time travel over both runs
    finished = [s.values["messages"] for s in history if not s.next]  # newest first
    assert finished[0] == messages
    assert messages[:8] in finished  # the end of the first run, still readable
    client = store._provider.sync()
    keys = sorted(client.scan_iter(match="*"))
    assert keys[0] == b"message_store:demo"
    assert all(is_companion_key(key.decode()) for key in keys[1:])  # the thread's own keys
    assert list(store.sessions()) == ["demo"]
