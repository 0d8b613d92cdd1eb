"""Realtime agents: immutable descriptions of who the model is (instructions, tools, handoffs, guardrails).

An :class:`Agent` never changes after :func:`agent` builds it; :func:`add_handoff` returns a new one. That
makes an agent safe to share between sessions and lets the session compare "the current agent" by identity.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from fastvoice.realtime.handoffs import Handoff, handoff
from fastvoice.realtime.tools import ClientTool, FunctionTool, Tool, normalize_tool

__all__ = [
    "Agent",
    "GuardrailResult",
    "OutputGuardrail",
    "add_handoff",
    "agent",
    "output_guardrail",
]


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """What a guardrail function may return instead of a bare bool."""

    tripwire_triggered: bool
    output_info: Any = None


GuardrailFunction: TypeAlias = Callable[..., "bool | GuardrailResult | Awaitable[bool | GuardrailResult]"]


@dataclass(frozen=True, slots=True, eq=False)
class OutputGuardrail:
    """A check over the assistant's transcript; when it trips the session cancels the response.

    ``fn(agent, text)`` (or ``fn(text)``) may be sync or async and returns a bool (True = trip) or a
    :class:`GuardrailResult`.
    """

    fn: GuardrailFunction
    name: str = ""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError("output guardrail must be callable")
        if not self.name:
            object.__setattr__(self, "name", getattr(self.fn, "__name__", "guardrail"))

    async def run(self, agent: Agent, text: str) -> GuardrailResult:
        try:
            n_params = len(inspect.signature(self.fn).parameters)
        except (TypeError, ValueError):
            n_params = 2
        out = self.fn(agent, text) if n_params >= 2 else self.fn(text)
        if inspect.isawaitable(out):
            out = await out
        if isinstance(out, GuardrailResult):
            return out
        if isinstance(out, bool):
            return GuardrailResult(out)
        raise TypeError(
            f"guardrail {self.name} returned {type(out).__name__}, expected bool or GuardrailResult"
        )


def output_guardrail(fn: GuardrailFunction) -> OutputGuardrail:
    """Decorator form of :class:`OutputGuardrail`."""
    return OutputGuardrail(fn)


@dataclass(frozen=True, slots=True, eq=False)
class Agent:
    """A Realtime agent. Build with :func:`agent`; compare by identity."""

    name: str
    instructions: str | Callable[[Agent], str] = ""
    tools: tuple[Tool, ...] = ()
    handoffs: tuple[Handoff, ...] = ()
    model: str | None = None
    output_guardrails: tuple[OutputGuardrail, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("agent name must be a non-empty str")
        if not isinstance(self.instructions, str) and not callable(self.instructions):
            raise TypeError("instructions must be a str or a callable (agent) -> str")
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ValueError("model must be a non-empty str or None")
        # Normalize here too (not only in agent()) so Agent(...) built directly, or via dataclasses.replace,
        # holds the same validated, immutable shapes.
        object.__setattr__(self, "tools", tuple(normalize_tool(t) for t in self.tools))
        object.__setattr__(self, "handoffs", tuple(_as_handoff(h) for h in self.handoffs))
        object.__setattr__(self, "output_guardrails", tuple(_as_guardrail(g) for g in self.output_guardrails))
        seen: set[str] = set()
        for name in [t.name for t in self.tools] + [h.tool_name for h in self.handoffs]:
            if name in seen:
                raise ValueError(f"agent {self.name}: two tools/handoffs are named {name!r}")
            seen.add(name)

    def get_instructions(self) -> str:
        """The instructions text (calling the dynamic-instructions callable if one was given)."""
        if isinstance(self.instructions, str):
            return self.instructions
        text = self.instructions(self)
        if not isinstance(text, str):
            raise TypeError(
                f"agent {self.name}: instructions callable returned {type(text).__name__}, not str"
            )
        return text

    @property
    def function_tools(self) -> dict[str, FunctionTool]:
        """Tools the session runs itself, by name."""
        return {t.name: t for t in self.tools if isinstance(t, FunctionTool)}

    @property
    def client_tools(self) -> dict[str, ClientTool]:
        """Tools the application answers, by name."""
        return {t.name: t for t in self.tools if isinstance(t, ClientTool)}

    def find_handoff(self, tool_name: str) -> Handoff | None:
        for h in self.handoffs:
            if h.tool_name == tool_name:
                return h
        return None

    def session_tools(self) -> list[dict[str, Any]]:
        """Every tool and handoff as GA ``session.tools`` entries (tools first, like openai-agents)."""
        return [t.to_session_tool() for t in self.tools] + [h.to_session_tool() for h in self.handoffs]


def _as_handoff(item: object) -> Handoff:
    if isinstance(item, Handoff):
        return item
    if isinstance(item, Agent):
        return handoff(item)
    raise TypeError(f"handoffs must be Agents or Handoffs, got {type(item).__name__}")


def _as_guardrail(item: object) -> OutputGuardrail:
    if isinstance(item, OutputGuardrail):
        return item
    if callable(item):
        return OutputGuardrail(item)
    raise TypeError(f"output guardrails must be callables, got {type(item).__name__}")


def agent(
    name: str,
    instructions: str | Callable[[Agent], str] = "",
    tools: Sequence[object] = (),
    handoffs: Sequence[Agent | Handoff] = (),
    model: str | None = None,
    output_guardrails: Sequence[object] = (),
) -> Agent:
    """Build an :class:`Agent`.

    ``tools`` takes guide-style dicts (``name``/``description``/``parameters``), :class:`ClientTool` or
    ``@function_tool`` functions. ``handoffs`` takes agents (default ``transfer_to_<name>`` tool) or
    :func:`~fastvoice.realtime.handoffs.handoff` objects. ``output_guardrails`` takes callables over the
    transcript.
    """
    return Agent(
        name=name,
        instructions=instructions,
        tools=tuple(normalize_tool(t) for t in tools),
        handoffs=tuple(_as_handoff(h) for h in handoffs),
        model=model,
        output_guardrails=tuple(_as_guardrail(g) for g in output_guardrails),
    )


def add_handoff(base: Agent, other: Agent | Handoff, condition: str | None = None) -> Agent:
    """A new agent equal to ``base`` plus a handoff to ``other`` (``condition`` tells the model when)."""
    if isinstance(other, Handoff):
        if condition is not None:
            raise ValueError("pass the condition to handoff(...) when giving a Handoff")
        new = other
    else:
        new = handoff(other, condition=condition)
    return replace(base, handoffs=(*base.handoffs, new))
