"""Handoffs: a tool named ``transfer_to_<agent>`` whose call switches the session to another agent.

Agents are immutable, so two agents that hand off to each other cannot both hold the other directly. A
:class:`Handoff` may therefore point at its target lazily — ``handoff(lambda: triage, agent_name="Triage")`` —
and :meth:`Handoff.resolve` returns the agent when the call actually happens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastvoice.realtime.agent import Agent

__all__ = ["Handoff", "handoff", "handoff_tool_description", "handoff_tool_name", "snake_case"]

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9A-Za-z]+")


def snake_case(name: str) -> str:
    """``"TechSupport"`` → ``"tech_support"``, ``"Billing Agent"`` → ``"billing_agent"``, ``"HTTPBot"`` →
    ``"http_bot"``. Characters outside ``[A-Za-z0-9]`` become single underscores."""
    spaced = _CAMEL_BOUNDARY.sub("_", name.strip())
    return _NON_WORD.sub("_", spaced).strip("_").lower()


def handoff_tool_name(agent_name: str) -> str:
    """The tool the model calls to reach ``agent_name``."""
    return f"transfer_to_{snake_case(agent_name)}"


def handoff_tool_description(agent_name: str, condition: str | None) -> str:
    """Same text as openai-agents-python, so prompts tuned for it behave the same."""
    return f"Handoff to the {agent_name} agent to handle the request. {condition or ''}"


@dataclass(frozen=True, slots=True, eq=False)
class Handoff:
    """A handoff to ``target`` (an :class:`Agent`, or a zero-argument callable returning one).

    ``condition`` is appended to the tool description; it tells the model when to hand off.
    """

    target: Agent | Callable[[], Agent]
    agent_name: str
    tool_name: str
    tool_description: str
    condition: str | None = None

    def resolve(self) -> Agent:
        """The target agent (calling the lazy factory if one was given)."""
        from fastvoice.realtime.agent import Agent

        target = self.target
        agent = target if isinstance(target, Agent) else target()
        if not isinstance(agent, Agent):
            raise TypeError(
                f"handoff {self.tool_name}: target resolved to {type(agent).__name__}, not an Agent"
            )
        return agent

    def to_session_tool(self) -> dict[str, Any]:
        """The GA ``session.tools[]`` entry: a function with an empty, strict parameters object."""
        return {
            "type": "function",
            "name": self.tool_name,
            "description": self.tool_description,
            "parameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {},
                "required": [],
            },
        }

    def transfer_message(self) -> str:
        """The ``function_call_output`` sent after switching: ``{"assistant": "<name>"}``."""
        return json.dumps({"assistant": self.agent_name})


def handoff(
    target: Agent | Callable[[], Agent],
    *,
    condition: str | None = None,
    agent_name: str | None = None,
    tool_name_override: str | None = None,
    tool_description_override: str | None = None,
) -> Handoff:
    """Build a :class:`Handoff`. ``agent_name`` is required when ``target`` is a lazy callable."""
    from fastvoice.realtime.agent import Agent

    if isinstance(target, Agent):
        name = agent_name or target.name
    elif callable(target):
        if not agent_name:
            raise ValueError("handoff to a lazy target needs agent_name=...")
        name = agent_name
    else:
        raise TypeError(
            f"handoff target must be an Agent or a callable returning one, got {type(target).__name__}"
        )
    if condition is not None and not isinstance(condition, str):
        raise TypeError("condition must be a str")
    tool_name = tool_name_override or handoff_tool_name(name)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tool_name):
        raise ValueError(f"handoff tool name {tool_name!r} is not a valid tool name; pass tool_name_override")
    return Handoff(
        target=target,
        agent_name=name,
        tool_name=tool_name,
        tool_description=tool_description_override or handoff_tool_description(name, condition),
        condition=condition,
    )
