"""session.update and every client-event builder against the wire capture and the openai GA types."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pydantic
import pytest
from _data import WIRE_CAPTURE, data_path
from fastvoice import realtime as rt
from fastvoice.realtime import _protocol as P
from fastvoice.realtime.events import (
    AssistantMessageItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    SystemMessageItem,
    UserMessageItem,
)
from fastvoice.testing import EventValidationError, validate_client_event
from openai.types.realtime import RealtimeClientEvent

CLIENT_EVENT = pydantic.TypeAdapter(RealtimeClientEvent)


def assert_valid(event: dict[str, Any]) -> None:
    """Both the lenient reference (TypeAdapter) and our strict validator (no unknown fields) accept it."""
    parsed = CLIENT_EVENT.validate_python(event)
    assert parsed.type == event["type"]
    validate_client_event(event)
    # And it survives a JSON round trip unchanged (no bytes, tuples or other non-JSON values).
    assert json.loads(json.dumps(event)) == event


def capture_client_frames() -> list[dict[str, Any]]:
    lines = data_path(WIRE_CAPTURE).read_text().splitlines()
    return [json.loads(line[5:]) for line in lines if line.startswith("C->S {")]


@rt.function_tool
def get_weather(city: str) -> str:
    """Get weather for a city."""
    return f"Sunny in {city}"


def capture_agents() -> tuple[rt.Agent, rt.Agent, rt.RunConfig]:
    billing = rt.agent("Billing", "You handle billing.")
    assistant = rt.agent("Assistant", "You are helpful.", tools=[get_weather], handoffs=[billing])
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(model="gpt-realtime-2.1"))
    return assistant, billing, config


def test_first_frame_equals_openai_agents_capture() -> None:
    frames = capture_client_frames()
    assistant, _, config = capture_agents()
    ours = rt.build_session_update(assistant, config)
    assert ours == frames[0]
    assert_valid(ours)


def test_handoff_update_equals_capture() -> None:
    frames = capture_client_frames()
    theirs = next(
        f
        for f in frames
        if f["type"] == "session.update" and f["session"].get("instructions") == "You handle billing."
    )
    _, billing, config = capture_agents()
    ours = P.build_agent_update(billing, config)
    assert ours == theirs
    assert_valid(ours)


def test_capture_frames_for_message_output_and_truncate_match_builders() -> None:
    frames = capture_client_frames()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for f in frames:
        by_type.setdefault(f["type"], []).append(f)
    assert P.user_message("Hello") == by_type["conversation.item.create"][0]
    assert P.function_call_output("call_1", "Sunny in SF") == by_type["conversation.item.create"][1]
    assert P.conversation_item_truncate("item_a2", 0, 250) == by_type["conversation.item.truncate"][0]
    assert P.conversation_item_retrieve("item_a3") == by_type["conversation.item.retrieve"][0]
    assert P.input_audio_buffer_commit() == by_type["input_audio_buffer.commit"][0]
    rc = by_type["response.create"][0]
    assert P.response_create(event_id=rc["event_id"]) == rc
    handoff = rt.handoff(rt.agent("Billing"))
    assert (
        P.function_call_output("call_2", handoff.transfer_message()) == by_type["conversation.item.create"][2]
    )


def test_default_model_and_voice() -> None:
    ev = rt.build_session_update(rt.agent("A", "hi"))
    assert ev["session"]["model"] == "gpt-realtime"
    assert ev["session"]["audio"]["output"]["voice"] == "ash"
    assert "tracing" not in ev["session"]
    assert_valid(ev)
    # Agent model wins over the settings' model.
    ev = rt.build_session_update(
        rt.agent("A", model="gpt-realtime-mini"), rt.RunConfig(rt.SessionModelSettings(model="x"))
    )
    assert ev["session"]["model"] == "gpt-realtime-mini"


def test_every_setting_reaches_the_wire() -> None:
    settings = rt.SessionModelSettings(
        model="gpt-realtime",
        voice="marin",
        modalities=["text", "audio"],
        input_audio_format="g711_ulaw",
        output_audio_format={"type": "audio/pcma"},
        input_audio_transcription=rt.InputAudioTranscription(
            model="whisper-1", language="fr", prompt="names"
        ),
        input_audio_noise_reduction="far_field",
        turn_detection=rt.TurnDetectionConfig(
            type="server_vad",
            threshold=0.6,
            prefix_padding_ms=200,
            silence_duration_ms=500,
            idle_timeout_ms=6000,
            create_response=False,
            interrupt_response=False,
        ),
        speed=1.25,
        tool_choice="get_weather",
        max_output_tokens=512,
        prompt=rt.Prompt(id="pmpt_1", version="2", variables={"name": "Ada"}),
    )
    config = rt.RunConfig(model_settings=settings, tracing=rt.TracingConfig(workflow_name="wf", group_id="g"))
    agent = rt.agent("A", lambda a: f"I am {a.name}", tools=[get_weather])
    s = rt.build_session_update(agent, config)["session"]
    assert s["instructions"] == "I am A"
    assert s["output_modalities"] == ["audio"]
    assert s["audio"]["input"] == {
        "format": {"type": "audio/pcmu"},
        "noise_reduction": {"type": "far_field"},
        "transcription": {"model": "whisper-1", "language": "fr", "prompt": "names"},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.6,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 500,
            "idle_timeout_ms": 6000,
            "create_response": False,
            "interrupt_response": False,
        },
    }
    assert s["audio"]["output"] == {"format": {"type": "audio/pcma"}, "voice": "marin", "speed": 1.25}
    assert s["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert s["max_output_tokens"] == 512
    assert s["prompt"] == {"id": "pmpt_1", "version": "2", "variables": {"name": "Ada"}}
    assert s["tracing"] == {"workflow_name": "wf", "group_id": "g"}
    assert_valid(rt.build_session_update(agent, config))
    # Handoff updates never carry tracing (it cannot change once set) and keep voice/formats.
    other = rt.agent("B", "other", tools=[get_weather])
    upd = P.build_agent_update(other, config, model="gpt-realtime")["session"]
    assert "tracing" not in upd and upd["audio"] == s["audio"] and upd["instructions"] == "other"
    assert_valid(P.build_agent_update(other, config))


def test_tool_choice_must_name_one_of_the_agents_tools() -> None:
    config = rt.RunConfig(model_settings=rt.SessionModelSettings(tool_choice="get_weather"))
    with pytest.raises(ValueError, match="'get_weather', which agent 'B' does not have"):
        rt.build_session_update(rt.agent("B", "no tools"), config)
    forced = rt.build_session_update(rt.agent("A", tools=[get_weather]), config)
    assert forced["session"]["tool_choice"] == {"type": "function", "name": "get_weather"}
    required = rt.RunConfig(model_settings=rt.SessionModelSettings(tool_choice="required"))
    assert rt.build_session_update(rt.agent("B"), required)["session"]["tool_choice"] == "required"


def test_turn_detection_none_is_sent_as_null_and_text_modality() -> None:
    settings = rt.SessionModelSettings(
        turn_detection=None, input_audio_transcription=None, output_modalities=["text"]
    )
    ev = rt.build_session_update(rt.agent("A"), rt.RunConfig(model_settings=settings, tracing="auto"))
    assert ev["session"]["audio"]["input"]["turn_detection"] is None
    assert "transcription" not in ev["session"]["audio"]["input"]
    assert ev["session"]["output_modalities"] == ["text"]
    assert ev["session"]["tracing"] == "auto"
    assert_valid(ev)


@pytest.mark.parametrize(
    ("value", "ga"),
    [
        ("pcm16", {"type": "audio/pcm", "rate": 24000}),
        ("audio/pcm", {"type": "audio/pcm", "rate": 24000}),
        ({"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcm", "rate": 24000}),
        ({"type": "audio/pcm"}, {"type": "audio/pcm", "rate": 24000}),
        ("g711_ulaw", {"type": "audio/pcmu"}),
        ("g711_alaw", {"type": "audio/pcma"}),
        ({"type": "audio/pcmu"}, {"type": "audio/pcmu"}),
    ],
)
def test_audio_formats_accept_beta_and_ga_spellings(value: Any, ga: dict[str, Any]) -> None:
    s = rt.SessionModelSettings(input_audio_format=value, output_audio_format=value)
    assert s.input_format.to_wire() == ga and s.output_format.to_wire() == ga
    assert_valid(rt.build_session_update(rt.agent("A"), rt.RunConfig(model_settings=s)))


def test_format_durations() -> None:
    from fastvoice.realtime.config import audio_format_info

    assert audio_format_info("pcm16").duration_ms(4800) == 100.0
    assert audio_format_info("g711_ulaw").duration_ms(800) == 100.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"voice": "nova"}, "voice must be one of"),
        ({"input_audio_format": "mp3"}, "unknown audio format"),
        ({"output_audio_format": {"type": "audio/pcm", "rate": 16000}}, "rate 24000"),
        ({"output_audio_format": {"type": "audio/pcm", "bits": 16}}, "unknown format keys"),
        ({"speed": 3.0}, r"speed must be within"),
        ({"speed": float("nan")}, "finite"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 5000}, "max_output_tokens"),
        ({"modalities": ["video"]}, "modalities must be one of"),
        ({"output_modalities": ["text", "audio"]}, "not both"),
        ({"input_audio_noise_reduction": "loud"}, "noise_reduction"),
        ({"tool_choice": ""}, "tool_choice"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rt.SessionModelSettings(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": "vad"}, "turn_detection.type"),
        ({"eagerness": "extreme"}, "eagerness"),
        ({"type": "semantic_vad", "threshold": 0.5}, "only apply to type='server_vad'"),
        ({"type": "server_vad", "eagerness": "low"}, "only applies to type='semantic_vad'"),
        ({"type": "server_vad", "threshold": 1.5}, "threshold"),
        ({"type": "server_vad", "silence_duration_ms": -1}, "silence_duration_ms"),
        ({"create_response": "yes"}, "create_response"),
    ],
)
def test_turn_detection_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rt.TurnDetectionConfig(**kwargs)


def test_configs_are_frozen_and_run_config_validates() -> None:
    s = rt.SessionModelSettings()
    with pytest.raises(AttributeError):
        s.voice = "alloy"  # type: ignore[misc]
    with pytest.raises(ValueError, match="tracing"):
        rt.RunConfig(tracing="on")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guardrail_debounce_chars"):
        rt.RunConfig(guardrail_debounce_chars=0)
    assert rt.ReconnectConfig().delays() == [0.5, 1.0, 2.0]
    assert rt.ReconnectConfig(max_attempts=6, max_delay_s=3.0).delays() == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert rt.ReconnectConfig(enabled=False).delays() == []


def test_simple_builders_validate_and_encode_audio() -> None:
    pcm = (np.sin(np.arange(480) / 7.0) * 20000).astype("<i2")
    ev = P.input_audio_buffer_append(pcm.tobytes(), event_id="e1")
    assert base64.b64decode(ev["audio"]) == pcm.tobytes() and ev["event_id"] == "e1"
    assert P.input_audio_buffer_append(memoryview(pcm.tobytes()))["audio"] == ev["audio"]
    assert P.input_audio_buffer_append(ev["audio"])["audio"] == ev["audio"]
    events = [
        ev,
        P.input_audio_buffer_commit(),
        P.input_audio_buffer_clear(),
        P.user_message("hi", event_id="e2"),
        P.function_call_output("call_9", '{"ok": true}'),
        P.response_create(),
        P.response_create({"instructions": "be brief", "output_modalities": ["text"]}),
        P.response_cancel(),
        P.response_cancel("resp_1"),
        P.conversation_item_truncate("item_1", 0, 1234),
        P.conversation_item_retrieve("item_1"),
        P.conversation_item_delete("item_1"),
        P.conversation_item_create(
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "x"}]},
            previous_item_id="root",
        ),
        P.session_update({"type": "realtime", "instructions": "x"}),
    ]
    for e in events:
        assert_valid(e)


def test_builders_reject_bad_input() -> None:
    with pytest.raises(TypeError):
        P.input_audio_buffer_append(123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audio_end_ms"):
        P.conversation_item_truncate("item_1", 0, -5)
    with pytest.raises(ValueError, match="content_index"):
        P.conversation_item_truncate("item_1", True, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="call_id"):
        P.function_call_output("", "x")
    with pytest.raises(TypeError, match="output"):
        P.function_call_output("c", {"a": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        P.user_message(b"hi")  # type: ignore[arg-type]


def test_strict_validator_catches_what_type_adapter_lets_through() -> None:
    typo = {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voise": "ash"}}}}
    CLIENT_EVENT.validate_python(typo)  # the lenient reference accepts the typo...
    with pytest.raises(EventValidationError, match=r"session\.audio\.output\.voise"):
        validate_client_event(typo)  # ...ours names it.
    with pytest.raises(EventValidationError, match="not a GA client event type"):
        validate_client_event({"type": "input_audio_buffer.push"})
    with pytest.raises(EventValidationError, match="not valid JSON"):
        validate_client_event("{nope")
    # Beta session.update (no session.type) is not GA.
    with pytest.raises(EventValidationError):
        validate_client_event({"type": "session.update", "session": {"modalities": ["text"], "voice": "ash"}})


def test_history_replay_events_rebuild_text_history() -> None:
    history = [
        UserMessageItem("i1", text="typed"),
        UserMessageItem("i2", transcript="spoken", has_audio=True),
        UserMessageItem("i3", has_audio=True),  # no transcript: skipped
        AssistantMessageItem("i4", transcript="answer", has_audio=True),
        SystemMessageItem("i5", "be nice"),
        FunctionCallItem("i6", "call_1", "get_weather", '{"city":"SF"}'),
        FunctionCallOutputItem("i7", "call_1", "Sunny"),
    ]
    events = P.history_replay_events(history)
    assert len(events) == 6
    for e in events:
        assert_valid(e)
    texts = [e["item"].get("content", [{}])[0].get("text") for e in events[:4]]
    assert texts == ["typed", "spoken", "answer", "be nice"]
    assert events[3]["item"]["role"] == "system"
    assert events[4]["item"] == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"SF"}',
    }
    assert events[5]["item"]["output"] == "Sunny"


def test_beta_server_event_names_map_to_ga() -> None:
    from openai.types.realtime import RealtimeServerEvent

    ga_types = {
        m.model_fields["type"].annotation.__args__[0]
        for m in RealtimeServerEvent.__origin__.__args__  # type: ignore[attr-defined]
    }
    for beta, ga in P.BETA_SERVER_EVENT_ALIASES.items():
        assert ga in ga_types
        assert P.canonical_server_event_type(beta) == ga
    assert P.canonical_server_event_type("response.output_audio.delta") == "response.output_audio.delta"


def test_every_public_builder_is_covered_here() -> None:
    """Guards the rule that every client-event builder is validated above: a new builder must be added."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_every_public_builder_is_covered_here))  # type: ignore[arg-type]
    not_builders = {
        "canonical_server_event_type",
        "resolve_model",
        "build_session_config",
        "BETA_SERVER_EVENT_ALIASES",
    }
    builders = [n for n in P.__all__ if n not in not_builders]
    assert len(builders) == 15
    for name in builders:
        assert f"P.{name}(" in source or f"rt.{name}(" in source, (
            f"builder {name} is not exercised by this module"
        )
