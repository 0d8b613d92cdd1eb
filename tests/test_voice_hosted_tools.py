"""Hosted tools (file search, web search, code interpreter, MCP...) in `AgentWorkflow`: passed
through unchanged to `/responses`, valid per openai's tool param types; malformed dicts are
refused at construction."""

from __future__ import annotations

import typing

import aiohttp
import pydantic
import pytest
from fastvoice.realtime import function_tool
from fastvoice.testing import FakeOpenAIServer, FakeResponse
from fastvoice.voice import AgentWorkflow, AudioInput, Pipeline
from voice_peers import CountingTTS, FixedSTT, PeerProvider, speech

HOSTED = [
    {"type": "file_search", "vector_store_ids": ["vs_123"], "max_num_results": 4},
    {"type": "web_search", "search_context_size": "low"},
    {"type": "web_search_preview"},
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {
        "type": "mcp",
        "server_label": "deepwiki",
        "server_url": "https://mcp.deepwiki.com/mcp",
        "require_approval": "never",
    },
    {"type": "image_generation"},
]


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


def openai_tool_member(kind: str) -> type:
    from openai.types.responses import ToolParam

    for member in typing.get_args(ToolParam):
        if kind in typing.get_args(typing.get_type_hints(member)["type"]):
            return member
    raise AssertionError(kind)


async def test_hosted_tools_reach_the_responses_request_unchanged():
    async with FakeOpenAIServer(api_key="sk-test") as server:
        server.responses = [
            FakeResponse(tool_calls=[("get_weather", {"city": "Oslo"})]),
            FakeResponse(text="It is sunny in Oslo, says the file."),
        ]
        async with AgentWorkflow(
            agent={"instructions": "Be brief.", "tools": [get_weather, *HOSTED]},
            api_key="sk-test",
            base_url=server.base_url,
        ) as wf:
            provider = PeerProvider(FixedSTT("weather in oslo"), CountingTTS())
            result = await Pipeline(wf, provider=provider).run(
                AudioInput(speech(), format="pcm16", sample_rate=16000)
            )
            await result.collect_audio()
        assert server.errors == []  # the fake validates every tool, unknown fields included
        bodies = [r.body for r in server.requests if r.path == "/responses"]
        assert len(bodies) == 2 and result.turns[-1].reply == "It is sunny in Oslo, says the file."
        for body in bodies:
            tools = body["tools"]
            assert tools[0]["type"] == "function" and tools[0]["name"] == "get_weather"
            assert tools[1:] == HOSTED  # byte for byte as given
            for tool in tools:  # and each is a valid openai.types.responses tool param
                pydantic.TypeAdapter(openai_tool_member(tool["type"])).validate_python(tool)


async def test_the_fake_server_rejects_an_unknown_field_in_a_tool():
    async with FakeOpenAIServer(api_key="sk-test") as server, aiohttp.ClientSession() as http:
        body = {
            "model": "gpt-4.1-mini",
            "input": [{"role": "user", "content": "hi"}],
            "stream": True,
            "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"], "vector_store": "typo"}],
        }
        headers = {"Authorization": "Bearer sk-test"}
        async with http.post(server.base_url + "/responses", json=body, headers=headers) as resp:
            assert resp.status == 400
        assert len(server.errors) == 1 and "vector_store" in server.errors[0]


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"type": "file_search"}, "needs 'vector_store_ids'"),
        ({"type": "file_search", "vector_store_ids": "vs_1"}, "must be a list"),
        ({"type": "file_search", "vector_store_ids": []}, "non-empty"),
        ({"vector_store_ids": ["vs_1"]}, "string 'type'"),
        ({"type": "file_serach", "vector_store_ids": ["vs_1"]}, "unknown hosted tool type 'file_serach'"),
        ({"type": "mcp", "server_url": "https://x"}, "needs 'server_label'"),
        ({"type": "mcp", "server_label": "x"}, "server_url"),
        ({"type": "code_interpreter"}, "needs 'container'"),
        ({"type": "function", "name": "f", "parameters": {}}, "pass a function_tool"),
        ({"type": "local_shell"}, "run by the client"),
    ],
)
def test_a_malformed_tool_dict_is_refused_at_construction(tool, message):
    with pytest.raises(ValueError, match=message) as info:
        AgentWorkflow(agent={"tools": [get_weather, tool]}, api_key="sk-test")
    assert "tool 1" in str(info.value)  # which tool of the list


def test_other_tool_kinds_are_a_type_error():
    with pytest.raises(TypeError, match="hosted tool dicts"):
        AgentWorkflow(agent={"tools": [42]}, api_key="sk-test")
