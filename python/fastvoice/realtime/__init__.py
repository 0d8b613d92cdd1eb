"""Realtime voice agents on the OpenAI Realtime API (GA protocol).

This package holds the parts that do not touch the network: agents, tools, handoffs, configuration, events,
auth and the client-event builders (:mod:`fastvoice.realtime._protocol`). The session (:func:`start_session`,
:class:`Session`) and :class:`Runner` build on them.
"""

from fastvoice.realtime import events
from fastvoice.realtime._protocol import build_agent_update, build_session_config, build_session_update
from fastvoice.realtime.agent import (
    Agent,
    GuardrailResult,
    OutputGuardrail,
    add_handoff,
    agent,
    output_guardrail,
)
from fastvoice.realtime.auth import MissingAPIKeyError, redact, require_api_key, resolve_api_key
from fastvoice.realtime.config import (
    DEFAULT_MODEL,
    VOICES,
    InputAudioTranscription,
    Prompt,
    ReconnectConfig,
    RunConfig,
    SessionModelSettings,
    TracingConfig,
    TurnDetectionConfig,
)
from fastvoice.realtime.handoffs import Handoff, handoff
from fastvoice.realtime.runner import Runner
from fastvoice.realtime.session import Session, SessionClosedError, start_session, stop_session
from fastvoice.realtime.tools import (
    ClientTool,
    FunctionTool,
    ToolArgumentsError,
    ToolContext,
    ToolResult,
    default_tool_error_text,
    function_tool,
)

__all__ = [
    "DEFAULT_MODEL",
    "VOICES",
    "Agent",
    "ClientTool",
    "FunctionTool",
    "GuardrailResult",
    "Handoff",
    "InputAudioTranscription",
    "MissingAPIKeyError",
    "OutputGuardrail",
    "Prompt",
    "ReconnectConfig",
    "RunConfig",
    "Runner",
    "Session",
    "SessionClosedError",
    "SessionModelSettings",
    "ToolArgumentsError",
    "ToolContext",
    "ToolResult",
    "TracingConfig",
    "TurnDetectionConfig",
    "add_handoff",
    "agent",
    "build_agent_update",
    "build_session_config",
    "build_session_update",
    "default_tool_error_text",
    "events",
    "function_tool",
    "handoff",
    "output_guardrail",
    "redact",
    "require_api_key",
    "resolve_api_key",
    "start_session",
    "stop_session",
]
