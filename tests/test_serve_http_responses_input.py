"""``POST /v1/responses`` refuses bad input the way OpenAI does: a 400 naming the ``param`` with OpenAI's
``code``, never a 500 or a hang; a 404 for unknown ids, a 500 (or ``response.failed``) when the brain fails,
a client leaving mid-stream is no error; and a hypothesis fuzz of the JSON body."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import hypothesis
import pytest
from _responses_api import (
    WEATHER_TOOL,
    WeatherBrain,
    check_error,
    check_event,
    check_response,
    parse_sse,
    post,
)
from fastvoice.serve import BrainReply, RealtimeServer, TurnContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# ---- fixtures


@pytest.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    async with RealtimeServer(workflow=WeatherBrain, engines="light", warm=False) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---- bad input


BAD = [
    (b"{not json", None, "invalid_json"),
    (b"[1, 2]", None, None),
    ({"input": "hi"}, "model", "missing_required_parameter"),
    ({"model": "m"}, "input", "missing_required_parameter"),
    ({"model": 5, "input": "hi"}, "model", "invalid_type"),
    ({"model": "m", "input": 5}, "input", "invalid_type"),
    ({"model": "m", "input": "hi", "bogus": 1}, "bogus", "unknown_parameter"),
    ({"model": "m", "input": "hi", "background": True}, "background", "unsupported_value"),
    ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation", "unsupported_parameter"),
    ({"model": "m", "input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter"),
    ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "function"}]},
        "tools[0].name",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "a b"}]},
        "tools[0].name",
        "invalid_value",
    ),
    ({"model": "m", "input": "hi", "tools": [{**WEATHER_TOOL, "x": 1}]}, "tools[0].x", "unknown_parameter"),
    ({"model": "m", "input": "hi", "temperature": "hot"}, "temperature", "invalid_value"),
    ({"model": "m", "input": "hi", "max_output_tokens": "20"}, "max_output_tokens", "invalid_value"),
    ({"model": "m", "input": "hi", "max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value"),
    ({"model": "m", "input": "hi", "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "m", "input": "hi", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    (
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]},
        "input[0].type",
        "unsupported_value",
    ),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"model": "m", "input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
    (
        {"model": "m", "input": [{"role": "user", "content": "x", "extra": 1}]},
        "input[0].extra",
        "unknown_parameter",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        "input[0].content[0].type",
        "unsupported_value",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]},
        "input[0].content[0].text",
        "invalid_value",
    ),
    (
        {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    (
        {"model": "m", "input": [{"type": "function_call_output", "output": "x"}]},
        "input[0].call_id",
        "missing_required_parameter",
    ),
    ({"model": "m", "input": [{"content": "x"}]}, "input[0].type", "missing_required_parameter"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD)
async def test_bad_requests_get_openai_shaped_400s(
    server, http, body: Any, param: str | None, code: str | None
) -> None:
    status, response = await post(http, server, body)
    error = check_error(status, response)
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert error["message"]


async def test_unknown_response_id_is_a_404_and_the_brain_failing_a_500(http) -> None:
    class Broken:
        async def respond(self, turn: TurnContext) -> BrainReply:
            raise RuntimeError("boom")

    async with RealtimeServer(workflow=Broken, engines="light", warm=False) as srv:
        async with http.get(srv.base_url + "/responses/resp_nope") as r:
            check_error(r.status, await r.json(), 404)
        async with http.delete(srv.base_url + "/responses/resp_nope") as r:
            check_error(r.status, await r.json(), 404)
        status, body = await post(http, srv, {"model": "m", "input": "hi"})
        assert check_error(status, body, 500)["type"] == "server_error"
        status, events = await post(http, srv, {"model": "m", "input": "hi", "stream": True})
        assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
        assert events[-1]["response"]["status"] == "failed"
        assert events[-1]["response"]["error"]["code"] == "server_error"


async def test_a_client_leaving_mid_stream_is_no_error(server, http, caplog) -> None:
    body = json.dumps({"model": "m", "input": "word " * 5000, "stream": True}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = f"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    assert (await reader.read(200)).startswith(b"HTTP/1.1 200")
    writer.close()
    await asyncio.sleep(0.3)
    status, response = await post(http, server, {"model": "m", "input": "still there?"})
    assert status == 200 and response["output"][0]["content"][0]["text"].startswith("[] still there?")
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


# ---- a fuzz of the JSON body against a server on its own thread (hypothesis runs synchronously)


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[RealtimeServer]:
    loop = asyncio.new_event_loop()
    srv = RealtimeServer(workflow=WeatherBrain, engines="light", warm=False)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    yield srv
    asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    loop.close()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_text = st.text(max_size=12)
_part = st.one_of(
    st.builds(lambda t: {"type": "input_text", "text": t}, _text),
    st.builds(lambda t: {"type": "output_text", "text": t, "annotations": []}, _text),
    st.builds(
        lambda d: {"type": "input_image", "detail": d, "image_url": "data:,"}, st.sampled_from(["auto", "x"])
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["refusal", "input_file", "x"])}, optional={"text": _json}
    ),
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "user", "assistant", "system", "developer", "x"])},
    optional={"content": _text | st.lists(_part, max_size=2), "type": st.just("message"), "id": _text},
)
_call = st.fixed_dictionaries(
    {"type": st.just("function_call"), "call_id": st.sampled_from(["c1", "c2"])},
    optional={"name": st.just("get_weather") | _json, "arguments": st.just("{}") | _json},
)
_output = st.fixed_dictionaries(
    {"type": st.just("function_call_output"), "call_id": st.sampled_from(["c1", "c2"])},
    optional={"output": _text | st.lists(_part, max_size=1) | _json},
)
_item = st.one_of(_message, _message, _call, _output, st.just({"type": "item_reference", "id": "x"}), _json)
#: what a parameter holds when it is right (mostly) and when it is not
_PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "instructions": _text,
    "tools": st.lists(st.just(WEATHER_TOOL), max_size=1),
    "stream": st.booleans(),
    "store": st.booleans(),
    "tool_choice": st.sampled_from(["auto", "none", "required"]),
    "parallel_tool_calls": st.booleans(),
    "temperature": st.floats(0, 2),
    "max_output_tokens": st.integers(16, 40),
    "metadata": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
    "text": st.just({"format": {"type": "text"}}),
    "previous_response_id": _text,
}


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4.1", "input": draw(_text | st.lists(_item, max_size=4))}
    for key in draw(st.lists(st.sampled_from(sorted(_PARAMS)), max_size=4, unique=True)):
        body[key] = draw(_PARAMS[key])
    if draw(st.booleans()):  # then break one parameter, or drop it
        key = draw(st.sampled_from(["model", "input", *sorted(_PARAMS), "bogus"]))
        if draw(st.booleans()):
            body[key] = draw(_json)
        else:
            body.pop(key, None)
    return body


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies())
def test_fuzzed_bodies_get_a_valid_response_or_a_400(
    threaded_server: RealtimeServer, body: dict[str, Any]
) -> None:
    request = urllib.request.Request(
        threaded_server.base_url + "/responses",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            kind, text = r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        error = check_error(exc.code, json.loads(exc.read()))
        hypothesis.event(f"400 on {error['param']}")
        return
    hypothesis.event(f"200 {kind.split(';')[0]}")
    if kind.startswith("text/event-stream"):
        events = parse_sse(text)
        for event in events:
            check_event(event)
        assert events[-1]["type"] in ("response.completed", "response.incomplete")
    else:
        check_response(json.loads(text))
