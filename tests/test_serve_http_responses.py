"""``POST /v1/responses`` on fastvoice serve: the brain answers Responses clients offline.

A real :class:`RealtimeServer` on 127.0.0.1 (light engines, not warmed: no audio is involved) is driven by
raw HTTP (so every JSON body and SSE event is validated strictly against the ``openai`` types, see
``_responses_api``), by the official ``openai`` client, by fastvoice's ``voice.AgentWorkflow`` and by
openai-agents' ``Runner`` with a tool. Bad input and the fuzz are in ``test_serve_http_responses_input``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from _responses_api import WEATHER_TOOL, WeatherBrain, check_error, check_response, post
from fastvoice import voice
from fastvoice.serve import BrainReply, RealtimeServer, TurnContext
from fastvoice.serve.api.responses import ResponseStore, Stored
from openai import AsyncOpenAI, BadRequestError, NotFoundError

# ---- fixtures


@pytest.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(workflow=WeatherBrain, engines="light", warm=False) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(server: RealtimeServer) -> AsyncIterator[AsyncOpenAI]:
    openai_client = AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    yield openai_client
    await openai_client.close()


# ---- the event stream and the JSON object


async def test_streamed_text_reply_is_the_service_event_sequence(server, http) -> None:
    _, events = await post(
        http,
        server,
        {"model": "gpt-4.1", "input": "hello there", "instructions": "Be brief.", "stream": True},
    )
    text = "[Be brief.] hello there (turn 1, 1 items)"
    words = text.split(" ")
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(words),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    created, final = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["id"].startswith("resp_") and final["id"] == created["id"] == events[1]["response"]["id"]
    assert final["status"] == "completed" and final["instructions"] == "Be brief."
    assert final["completed_at"] >= final["created_at"]
    item = final["output"][0]
    assert item["id"].startswith("msg_") and item["role"] == "assistant" and item["status"] == "completed"
    assert {e.get("item_id", item["id"]) for e in events[2:-1]} == {item["id"]}
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["content"] == []
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == [words[0], *(" " + w for w in words[1:])]
    assert "".join(deltas) == text == item["content"][0]["text"]
    assert next(e for e in events if e["type"] == "response.output_text.done")["text"] == text
    check_response(final)
    usage = final["usage"]
    assert usage["output_tokens"] == -(-len(text) // 4)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    # The estimate grows with what the model reads: a longer input costs more input tokens.
    _, longer = await post(http, server, {"model": "gpt-4.1", "input": "hello there " * 50})
    assert longer["usage"]["input_tokens"] > usage["input_tokens"] + 100


async def test_openai_client_non_streamed_and_its_raw_json(server, client) -> None:
    raw = await client.responses.with_raw_response.create(
        model="gpt-4.1", input=[{"role": "user", "content": "hi"}], instructions="You are terse."
    )
    assert raw.http_response.status_code == 200 and raw.headers["x-request-id"].startswith("req_")
    body = raw.http_response.json()
    check_response(body)
    response = raw.parse()
    assert response.output_text == "[You are terse.] hi (turn 1, 1 items)"
    assert response.status == "completed" and response.model == "gpt-4.1"
    assert response.usage is not None and response.usage.input_tokens > 0


async def test_accepts_what_real_clients_send_by_default_and_echoes_it(server, http) -> None:
    body = {
        "model": "gpt-4.1-mini",
        "input": [{"role": "developer", "content": "Speak French."}, {"role": "user", "content": "bonjour"}],
        "include": ["message.output_text.logprobs"],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "truncation": "auto",
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "metadata": {"user": "u1"},
        "store": True,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_output_tokens": 500,
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "user": "someone",
        "top_logprobs": 2,
        "stream_options": {"include_obfuscation": False},
    }
    status, response = await post(http, server, body)
    assert status == 200, response
    check_response(response)
    assert response["metadata"] == {"user": "u1"} and response["temperature"] == 0.2
    assert response["text"] == {"format": {"type": "text"}, "verbosity": "low"}
    assert response["truncation"] == "auto" and response["reasoning"]["effort"] == "low"
    assert response["tools"][0]["name"] == "get_weather" and response["tools"][0]["strict"] is True
    text = response["output"][0]["content"][0]["text"]
    assert text == "[] bonjour (turn 1, 2 items)"  # developer text is a system item, not instructions


async def test_brain_sees_realtime_items_session_tools_and_the_request() -> None:
    seen: list[TurnContext] = []

    class Spy:
        async def respond(self, turn: TurnContext) -> BrainReply:
            seen.append(turn)
            return BrainReply(text="ok")

    async with (
        RealtimeServer(workflow=Spy, engines="light", warm=False) as srv,
        AsyncOpenAI(base_url=srv.base_url, api_key="x") as client,
    ):
        await client.responses.create(
            model="gpt-4.1",
            instructions="Be kind.",
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice="required",
            metadata={"a": "b"},
            input=[
                {"role": "system", "content": [{"type": "input_text", "text": "sys"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "one"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "two", "annotations": []}]},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city":"Oslo"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "snow"},
            ],
        )
    turn = seen[0]
    assert [(i["type"], i.get("role")) for i in turn.items] == [
        ("message", "system"),
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call_output", None),
    ]
    assert turn.items[2]["content"] == [{"type": "output_text", "text": "two"}]
    assert turn.items[3]["arguments"] == '{"city":"Oslo"}' and turn.pending_tool_output() == "snow"
    assert turn.instructions == "Be kind." and turn.tool_names == ["get_weather"]
    assert turn.tools[0]["parameters"]["required"] == ["city"] and "strict" not in turn.tools[0]
    assert turn.response is not None and turn.response["tool_choice"] == "required"
    assert turn.response["metadata"] == {"a": "b"} and turn.last_user_text() == "one"


# ---- function calls and their outputs


async def test_streamed_function_call_then_output_sent_back_inline(server, client) -> None:
    stream = await client.responses.create(
        model="gpt-4.1", input="What is the weather in Paris?", tools=[WEATHER_TOOL], stream=True
    )
    events = [e async for e in stream]
    final = events[-1].response  # type: ignore[union-attr]
    assert events[-1].type == "response.completed"
    message, call = final.output
    assert message.type == "message" and call.type == "function_call"
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    call_events = [e for e in events if getattr(e, "item_id", None) == call.id]
    assert [e.type for e in call_events][-1] == "response.function_call_arguments.done"
    deltas = "".join(e.delta for e in call_events if e.type == "response.function_call_arguments.delta")
    assert deltas == call.arguments
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.output_index for e in added] == [0, 1] and added[1].item.arguments == ""  # type: ignore[union-attr]
    # The client runs the tool and sends the history back itself, as agent SDKs do without store.
    history = [
        {"role": "user", "content": "What is the weather in Paris?"},
        *(item.model_dump(exclude_none=True) for item in final.output),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
    ]
    again = await client.responses.create(model="gpt-4.1", input=history, tools=[WEATHER_TOOL], store=False)
    assert again.output_text == "The weather: sunny, 21 C"
    with pytest.raises(BadRequestError):  # store=False: nothing to continue from
        await client.responses.create(model="gpt-4.1", input="x", previous_response_id=again.id)


async def test_function_call_output_by_previous_response_id(server, client) -> None:
    first = await client.responses.create(
        model="gpt-4.1", input="weather in Oslo and Rome?", tools=[WEATHER_TOOL]
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Oslo", "Rome"]
    assert len({c.call_id for c in calls}) == 2
    # Every call needs its output; an output must answer a call (OpenAI's checks).
    with pytest.raises(BadRequestError, match="No tool output found for function call"):
        await client.responses.create(model="gpt-4.1", input="and?", previous_response_id=first.id)
    with pytest.raises(BadRequestError, match="No tool call found for function call output"):
        await client.responses.create(
            model="gpt-4.1",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "x"}],
        )
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"{i} C"}
        for i, c in enumerate(calls)
    ]
    second = await client.responses.create(
        model="gpt-4.1", input=outputs, previous_response_id=first.id, tools=[WEATHER_TOOL]
    )
    assert second.output_text == "The weather: 1 C" and second.previous_response_id == first.id


async def test_tool_choice_none_parallel_false_and_max_output_tokens(server, http) -> None:
    ask = {"model": "m", "input": "weather in Oslo and Rome?", "tools": [WEATHER_TOOL]}
    _, both = await post(http, server, ask)
    assert [o["type"] for o in both["output"]] == ["message", "function_call", "function_call"]
    _, none = await post(http, server, {**ask, "tool_choice": "none"})
    assert [o["type"] for o in none["output"]] == ["message"]
    _, one = await post(http, server, {**ask, "parallel_tool_calls": False})
    assert [o["type"] for o in one["output"]] == ["message", "function_call"]
    assert one["parallel_tool_calls"] is False
    for response in (both, none, one):
        check_response(response)
    long = "word " * 200
    _, cut = await post(http, server, {"model": "m", "input": long, "max_output_tokens": 16})
    check_response(cut)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    text = cut["output"][0]["content"][0]["text"]
    assert (
        0 < len(text) <= 64 and f"[] {long}".startswith(text) and cut["output"][0]["status"] == "incomplete"
    )
    _, events = await post(
        http, server, {"model": "m", "input": long, "max_output_tokens": 16, "stream": True}
    )
    assert (
        events[-1]["type"] == "response.incomplete"
        and events[-1]["response"]["output"][0]["content"][0]["text"] == text
    )


# ---- stored responses


async def test_previous_response_id_continues_the_conversation_with_its_brain(server, client) -> None:
    first = await client.responses.create(model="gpt-4.1", input="hello", instructions="Be brief.")
    assert first.output_text == "[Be brief.] hello (turn 1, 1 items)"
    second = await client.responses.create(model="gpt-4.1", input="again", previous_response_id=first.id)
    # The history is the stored one, the brain the conversation's own; instructions are not carried over.
    assert second.output_text == "[] again (turn 2, 3 items)"
    other = await client.responses.create(model="gpt-4.1", input="new")
    assert other.output_text == "[] new (turn 1, 1 items)"
    fetched = await client.responses.with_raw_response.retrieve(second.id)
    body = fetched.http_response.json()
    check_response(body)
    assert body == second.model_dump(mode="json", exclude_unset=True)
    deleted = await client.responses.delete(second.id)
    assert deleted is None
    with pytest.raises(NotFoundError):
        await client.responses.retrieve(second.id)
    with pytest.raises(BadRequestError) as info:
        await client.responses.create(model="gpt-4.1", input="x", previous_response_id=second.id)
    error = check_error(info.value.status_code, info.value.response.json())
    assert error["param"] == "previous_response_id" and error["code"] == "previous_response_not_found"


def test_store_is_bounded_and_keeps_continued_histories() -> None:
    store = ResponseStore(max_responses=3, max_chars=1000)

    def entry(n: int, parent: Stored | None, chars: int = 10) -> Stored:
        items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": str(n)}]}]
        return Stored({"id": f"resp_{n}"}, items, parent, None, (parent.chars if parent else 0) + chars)

    first = entry(0, None)
    store.put(first)
    node = first
    for n in range(1, 6):
        node = entry(n, node)
        store.put(node)
    assert len(store) == 3 and store.get("resp_0") is None and store.get("resp_2") is None
    # The newest still knows the whole conversation: evicted ancestors live on through it.
    assert [i["content"][0]["text"] for i in node.context()] == ["0", "1", "2", "3", "4", "5"]
    assert store.get("resp_3") is not None  # used: now the most recent
    store.put(entry(6, None))
    assert store.get("resp_4") is None and store.get("resp_3") is not None
    # The character budget evicts too, but never the response just stored.
    store.put(entry(7, None, chars=5000))
    assert len(store) == 1 and store.get("resp_7") is not None


# ---- other clients


async def test_agent_workflow_runs_offline_with_a_tool(server) -> None:
    cities: list[str] = []

    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: The city name.
        """
        cities.append(city)
        return f"sunny and 21 degrees in {city}"

    async with voice.AgentWorkflow(
        agent={"instructions": "Be brief.", "tools": [get_weather]}, base_url=server.base_url, api_key="x"
    ) as workflow:
        pieces = [p async for p in workflow.run("What is the weather in Paris?")]
        again = [p async for p in workflow.run("thanks")]
    assert cities == ["Paris"]
    assert "".join(pieces) == "Let me check.\nThe weather: sunny and 21 degrees in Paris"
    assert len(pieces) > 4  # streamed word by word
    assert "".join(again) == "[Be brief.] thanks (turn 1, 6 items)"  # the whole history, sent inline
    assert [i.get("type", "message") for i in workflow.history] == [
        "message",
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
        "message",
    ]


@pytest.fixture
def no_tracing() -> Iterator[None]:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


@pytest.mark.parametrize("mode", ["run", "run_streamed", "chained"])
async def test_openai_agents_runner_completes_a_tool_calling_run(server, no_tracing, mode: str) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool

    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"rainy in {city}"

    async with AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as openai_client:
        agent = Agent(
            name="Forecaster",
            instructions="Answer about the weather.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model="gpt-4.1", openai_client=openai_client),
        )
        question = "What is the weather in Paris?"
        if mode == "run_streamed":
            streamed = Runner.run_streamed(agent, question)
            kinds = [event.type async for event in streamed.stream_events()]
            assert "raw_response_event" in kinds
            result: Any = streamed
        else:
            result = await Runner.run(agent, question, auto_previous_response_id=mode == "chained")
    assert cities == ["Paris"]
    assert result.final_output == "The weather: rainy in Paris"
    assert len(result.raw_responses) == 2
    first, second = result.raw_responses
    assert second.response_id != first.response_id
    assert sum(r.usage.input_tokens for r in result.raw_responses) > 0
