"""Where users put it: RunnableWithMessageHistory and langchain_classic's ConversationBufferMemory."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from redis_chat_history import RedisChatMessageHistory


def answers() -> Iterator[AIMessage]:
    n = 0
    while True:
        n += 1
        yield AIMessage(f"answer {n}")


def make_chain(url: str) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "be brief"), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = GenericFakeChatModel(messages=answers())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return RunnableWithMessageHistory(
            prompt | model,
            lambda session_id: RedisChatMessageHistory(session_id, url=url, ttl=600),
            input_messages_key="question",
            history_messages_key="history",
        )


def contents(url: str, session_id: str) -> list[str]:
    return [str(m.content) for m in RedisChatMessageHistory(session_id, url=url).messages]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_invoke_and_stream(redis_url: str) -> None:
    chain = make_chain(redis_url)
    config = {"configurable": {"session_id": "sync"}}
    assert chain.invoke({"question": "q1"}, config=config).content == "answer 1"
    streamed = "".join(
        str(chunk.content) for chunk in chain.stream({"question": "q2"}, config=config)
    )
    assert streamed == "answer 2"
    assert contents(redis_url, "sync") == ["q1", "answer 1", "q2", "answer 2"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ainvoke_and_astream(redis_url: str) -> None:
    chain = make_chain(redis_url)
    config = {"configurable": {"session_id": "async"}}

    async def scenario() -> tuple[str, str]:
        first = await chain.ainvoke({"question": "q1"}, config=config)
        chunks = [chunk async for chunk in chain.astream({"question": "q2"}, config=config)]
        return str(first.content), "".join(str(c.content) for c in chunks)

    assert asyncio.run(scenario()) == ("answer 1", "answer 2")
    assert contents(redis_url, "async") == ["q1", "answer 1", "q2", "answer 2"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_history_is_passed_back_to_the_model(redis_url: str) -> None:
    seen: list[int] = []
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{q}")])

    def spy(value: object) -> object:
        seen.append(len(value.to_messages()))  # type: ignore[attr-defined]
        return value

    model = GenericFakeChatModel(messages=answers())
    chain = RunnableWithMessageHistory(
        prompt | spy | model,
        lambda sid: RedisChatMessageHistory(sid, url=redis_url),
        input_messages_key="q",
        history_messages_key="history",
    )
    for q in ("a", "b", "c"):
        chain.invoke({"q": q}, config={"configurable": {"session_id": "memory"}})
    assert seen == [1, 3, 5]


def test_conversation_buffer_memory(redis_url: str) -> None:
    from langchain_classic.memory import ConversationBufferMemory  # in the test extra

    history = RedisChatMessageHistory("classic", url=redis_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = ConversationBufferMemory(chat_memory=history, return_messages=True)
    memory.save_context({"input": "hi"}, {"output": "hello"})
    memory.save_context({"input": "how are you?"}, {"output": "fine"})
    loaded = memory.load_memory_variables({})["history"]
    assert loaded == [
        HumanMessage("hi"),
        AIMessage("hello"),
        HumanMessage("how are you?"),
        AIMessage("fine"),
    ]
    assert RedisChatMessageHistory("classic", url=redis_url).count() == 4
    memory.clear()
    assert history.count() == 0
