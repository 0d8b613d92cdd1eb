"""Agents, handoffs, guardrails and events: immutability, names, descriptions, history conversion."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import hypothesis
import pytest
from _data import WIRE_CAPTURE, data_path
from fastvoice import realtime as rt
from fastvoice.realtime import events as ev
from fastvoice.realtime.handoffs import snake_case
from hypothesis import strategies as st


def test_agent_is_immutable_and_add_handoff_returns_a_new_agent() -> None:
    greeter = rt.agent("Greeter", "Welcome users.")
    tech = rt.agent("TechSupport", "Provide technical assistance.")
    sales = rt.agent("Sales", "Handle sales inquiries.")
    routed = rt.add_handoff(
        rt.add_handoff(greeter, tech, condition="Technical issues"), sales, "Sales questions"
    )
    assert greeter.handoffs == ()  # the original is untouched
    assert routed is not greeter and routed.name == "Greeter" and routed.instructions == "Welcome users."
    assert [h.tool_name for h in routed.handoffs] == ["transfer_to_tech_support", "transfer_to_sales"]
    assert routed.handoffs[0].tool_description == (
        "Handoff to the TechSupport agent to handle the request. Technical issues"
    )
    assert routed.handoffs[0].resolve() is tech
    assert routed.find_handoff("transfer_to_sales") is routed.handoffs[1]
    assert routed.find_handoff("transfer_to_nobody") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        routed.name = "x"  # type: ignore[misc]


def test_handoff_tool_matches_capture() -> None:
    lines = data_path(WIRE_CAPTURE).read_text().splitlines()
    first = json.loads(next(line[5:] for line in lines if line.startswith("C->S {")))
    captured = next(t for t in first["session"]["tools"] if t["name"] == "transfer_to_billing")
    assert rt.handoff(rt.agent("Billing")).to_session_tool() == captured


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("Billing", "billing"),
        ("TechSupport", "tech_support"),
        ("Tech Support", "tech_support"),
        ("customer-service agent", "customer_service_agent"),
        ("HTTPBot", "http_bot"),
        ("Agent 007", "agent_007"),
        ("  Spaced  Out  ", "spaced_out"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_lazy_handoffs_allow_cycles() -> None:
    holder: dict[str, rt.Agent] = {}
    billing = rt.agent(
        "Billing", "bill", handoffs=[rt.handoff(lambda: holder["triage"], agent_name="Triage")]
    )
    triage = rt.agent("Triage", "route", handoffs=[billing])
    holder["triage"] = triage
    assert triage.handoffs[0].resolve() is billing
    assert billing.handoffs[0].resolve() is triage
    assert billing.handoffs[0].tool_name == "transfer_to_triage"
    with pytest.raises(ValueError, match="agent_name"):
        rt.handoff(lambda: triage)
    broken = rt.handoff(lambda: "not an agent", agent_name="X")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not an Agent"):
        broken.resolve()


def test_handoff_overrides_and_transfer_message() -> None:
    h = rt.handoff(rt.agent("Billing"), tool_name_override="to_billing", tool_description_override="Bills.")
    assert (h.tool_name, h.tool_description) == ("to_billing", "Bills.")
    assert json.loads(h.transfer_message()) == {"assistant": "Billing"}
    with pytest.raises(ValueError, match="not a valid tool name"):
        rt.handoff(rt.agent("Über Agent ü" * 10))


def test_duplicate_tool_names_are_rejected() -> None:
    billing = rt.agent("Billing")
    with pytest.raises(ValueError, match="transfer_to_billing"):
        rt.agent("A", tools=[{"name": "transfer_to_billing"}], handoffs=[billing])
    a = rt.agent("A", handoffs=[billing])
    with pytest.raises(ValueError, match="transfer_to_billing"):
        rt.add_handoff(a, billing)


def test_dynamic_instructions_and_validation() -> None:
    a = rt.agent("Ada", lambda agent: f"You are {agent.name}.")
    assert a.get_instructions() == "You are Ada."
    bad = rt.agent("B", lambda agent: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not str"):
        bad.get_instructions()
    with pytest.raises(ValueError, match="name"):
        rt.agent("  ")
    with pytest.raises(TypeError, match="instructions"):
        rt.agent("A", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handoffs"):
        rt.agent("A", handoffs=["Billing"])  # type: ignore[list-item]


def test_agent_built_directly_is_normalized_too() -> None:
    direct = rt.Agent(name="D", tools=[{"name": "ask"}], handoffs=[rt.agent("Billing")])  # type: ignore[list-item]
    assert isinstance(direct.tools, tuple) and isinstance(direct.tools[0], rt.ClientTool)
    assert direct.handoffs[0].tool_name == "transfer_to_billing"


def test_tool_partition() -> None:
    @rt.function_tool
    def ping() -> str:
        return "pong"

    a = rt.agent(
        "A",
        tools=[
            ping,
            {"name": "ask_user", "description": "d", "parameters": {"type": "object", "properties": {}}},
        ],
    )
    assert set(a.function_tools) == {"ping"} and set(a.client_tools) == {"ask_user"}
    assert [t["name"] for t in a.session_tools()] == ["ping", "ask_user"]


def test_output_guardrails_sync_async_and_results() -> None:
    def no_secrets(text: str) -> bool:
        return "secret" in text

    async def polite(agent: rt.Agent, text: str) -> rt.GuardrailResult:
        return rt.GuardrailResult("stupid" in text, output_info={"agent": agent.name})

    a = rt.agent("A", output_guardrails=[no_secrets, rt.output_guardrail(polite)])
    g1, g2 = a.output_guardrails
    assert g1.name == "no_secrets" and g2.name == "polite"
    assert asyncio.run(g1.run(a, "the secret is 42")).tripwire_triggered
    assert not asyncio.run(g1.run(a, "hello")).tripwire_triggered
    r = asyncio.run(g2.run(a, "that is stupid"))
    assert r.tripwire_triggered and r.output_info == {"agent": "A"}
    weird = rt.OutputGuardrail(lambda text: "yes")
    with pytest.raises(TypeError, match="expected bool"):
        asyncio.run(weird.run(a, "x"))


def test_events_are_frozen_slotted_and_validated() -> None:
    e = ev.RealtimeAudioEvent(audio=b"\x00\x01", item_id="item_1", content_index=0)
    assert e.type == "audio" and not hasattr(e, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.audio = b""  # type: ignore[misc]
    assert ev.RealtimeAgentStateEvent("speaking").state == "speaking"
    with pytest.raises(ValueError, match="state"):
        ev.RealtimeAgentStateEvent("sleeping")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        ev.RealtimeConnectionEvent("flaky")  # type: ignore[arg-type]
    call = ev.RealtimeToolCallEvent(name="get_weather", args='{"city": "SF"}', call_id="call_1")
    assert call.parsed_args() == {"city": "SF"}
    with pytest.raises(ValueError, match="JSON object"):
        ev.RealtimeToolCallEvent(name="x", args="[1]", call_id="c").parsed_args()
    a, b = rt.agent("A"), rt.agent("B")
    match ev.RealtimeHandoffEvent(from_agent=a, to_agent=b):
        case ev.RealtimeHandoffEvent(to_agent=target):
            assert target is b
    types = {cls.type for cls in ev.RealtimeEvent.__args__}  # type: ignore[attr-defined]
    assert len(types) == 19


def test_history_items_from_server_items() -> None:
    user_audio = {
        "id": "i1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": "hi"}],
    }
    user_text = {
        "id": "i2",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "typed"}],
    }
    assistant = {
        "id": "i3",
        "type": "message",
        "role": "assistant",
        "status": "incomplete",
        "content": [
            {"type": "output_audio", "transcript": "Hel"},
            {"type": "output_audio", "transcript": "lo"},
        ],
    }
    beta_assistant = {
        "id": "i4",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "t"}],
    }
    call = {
        "id": "i5",
        "type": "function_call",
        "call_id": "c1",
        "name": "f",
        "arguments": "{}",
        "status": "in_progress",
    }
    out = {"id": "i6", "type": "function_call_output", "call_id": "c1", "output": "42"}
    assert ev.history_item_from_server(user_audio) == ev.UserMessageItem("i1", None, "hi", has_audio=True)
    assert ev.history_item_from_server(user_text) == ev.UserMessageItem("i2", "typed", None)
    assert ev.history_item_from_server(assistant) == ev.AssistantMessageItem(
        "i3", None, "Hello", status="incomplete", has_audio=True
    )
    assert ev.history_item_from_server(beta_assistant) == ev.AssistantMessageItem("i4", "t", None)
    assert ev.history_item_from_server(call) == ev.FunctionCallItem("i5", "c1", "f", "{}", "in_progress")
    assert ev.history_item_from_server(out) == ev.FunctionCallOutputItem("i6", "c1", "42")
    assert ev.history_item_from_server({"id": "x", "type": "mcp_call"}) is None


@hypothesis.given(st.text(max_size=40))
def test_snake_case_properties(name: str) -> None:
    out = snake_case(name)
    assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*|", out)
    assert snake_case(out) == out  # idempotent
    if name.strip() and len(out) <= 52:  # "transfer_to_" + 52 chars is the 64-char tool-name limit
        assert rt.handoff(rt.agent(name)).tool_name == f"transfer_to_{out}"
