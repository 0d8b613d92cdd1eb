"""The "model" behind :class:`~fastvoice.serve.RealtimeServer`: what decides the reply to a turn.

A brain sees the conversation as the Realtime protocol defines it (items as dicts, the session config with
instructions and tools) and answers with text to speak and/or function calls. The server turns that into the
GA event stream; a brain never touches events, audio or pacing.

The default brain wraps a :class:`fastvoice.voice.Workflow` (the same object a voice pipeline runs), so one
workflow drives a local pipeline and an offline Realtime endpoint alike. A workflow's ``run`` may return
:class:`FunctionCall` objects among its text pieces to make the "model" call a tool; the tool's output then
arrives as the next turn's text.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fastvoice.voice.workflow import SimpleWorkflow, Workflow

__all__ = [
    "Brain",
    "BrainReply",
    "FunctionCall",
    "TurnContext",
    "WorkflowBrain",
    "echo_workflow",
    "load_brain",
]


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A tool call the brain makes; ``arguments`` is a dict (JSON-encoded on the wire) or raw JSON text."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))


@dataclass(slots=True)
class BrainReply:
    """What one response says (``text``, spoken through the TTS) and which tools it calls, in that order."""

    text: str = ""
    calls: list[FunctionCall] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TurnContext:
    """The conversation as a response sees it when it starts.

    ``items`` are the session's conversation items in order (GA item dicts; user audio items carry the
    offline transcript). ``session`` is the effective session config (``instructions``, ``tools``...).
    ``response`` is the ``response`` object of the ``response.create`` that asked for this reply, if any.
    """

    items: Sequence[Mapping[str, Any]]
    session: Mapping[str, Any]
    response: Mapping[str, Any] | None = None

    @property
    def instructions(self) -> str:
        value = (self.response or {}).get("instructions") or self.session.get("instructions")
        return value if isinstance(value, str) else ""

    @property
    def tools(self) -> list[Mapping[str, Any]]:
        tools = (self.response or {}).get("tools", self.session.get("tools")) or []
        return [t for t in tools if isinstance(t, Mapping)]

    @property
    def tool_names(self) -> list[str]:
        return [str(t["name"]) for t in self.tools if t.get("name")]

    @property
    def last_item(self) -> Mapping[str, Any] | None:
        return self.items[-1] if self.items else None

    def last_user_text(self) -> str:
        """The text of the newest user message: typed text or the transcript of spoken audio."""
        for item in reversed(self.items):
            if item.get("type") == "message" and item.get("role") == "user":
                return item_text(item)
        return ""

    def pending_tool_output(self) -> str | None:
        """The output of the newest ``function_call_output`` when it is the last item (a tool round trip
        continuing), else None."""
        last = self.last_item
        if last is not None and last.get("type") == "function_call_output":
            return str(last.get("output", ""))
        return None


def item_text(item: Mapping[str, Any]) -> str:
    """The words of a message item: text parts and audio transcripts joined."""
    words: list[str] = []
    for part in item.get("content") or []:
        if not isinstance(part, Mapping):
            continue
        value = part.get("text") if part.get("type") in ("input_text", "output_text", "text") else None
        if value is None:
            value = part.get("transcript")
        if isinstance(value, str) and value:
            words.append(value)
    return " ".join(words)


@runtime_checkable
class Brain(Protocol):
    """Anything with ``async respond(turn) -> BrainReply`` is a brain."""

    async def respond(self, turn: TurnContext) -> BrainReply: ...


def echo_workflow() -> SimpleWorkflow:
    """The default workflow: repeats what it heard, and reads out tool results."""

    def reply(text: str) -> str:
        text = text.strip()
        if not text:
            return "I did not catch that."
        # Typed text usually ends with its own punctuation; spoken transcripts have none.
        return f"You said: {text}" if text[-1] in ".!?" else f"You said: {text}."

    return SimpleWorkflow(reply)


class WorkflowBrain:
    """A :class:`~fastvoice.voice.Workflow` as a brain.

    ``run`` gets the newest user text (or, right after a tool round trip, the tool's output) and may return a
    str, an iterable of str and :class:`FunctionCall`, an async iterator of those, or an awaitable of any of
    these; the text pieces are joined into one reply.
    """

    def __init__(self, workflow: Workflow | None = None) -> None:
        self.workflow: Workflow = workflow if workflow is not None else echo_workflow()

    async def respond(self, turn: TurnContext) -> BrainReply:
        tool_output = turn.pending_tool_output()
        text = tool_output if tool_output is not None else turn.last_user_text()
        output: Any = self.workflow.run(text)
        if inspect.isawaitable(output):
            output = await output
        reply = BrainReply()
        pieces: list[str] = []

        def take(piece: Any) -> None:
            if isinstance(piece, FunctionCall):
                reply.calls.append(piece)
            elif isinstance(piece, str):
                pieces.append(piece)
            else:
                raise TypeError(f"workflow produced a {type(piece).__name__}; expected str or FunctionCall")

        if isinstance(output, str | FunctionCall):
            take(output)
        elif hasattr(output, "__aiter__"):
            async for piece in output:
                take(piece)
        elif isinstance(output, Iterable):
            for piece in output:
                take(piece)
        elif output is not None:
            raise TypeError(f"workflow run() returned a {type(output).__name__}")
        reply.text = " ".join(p.strip() for p in pieces if p.strip())
        return reply


def as_brain(obj: Any) -> Brain:
    """A brain from a brain, a workflow, or a plain ``fn(text)`` (wrapped in a SimpleWorkflow)."""
    if obj is None:
        return WorkflowBrain()
    if isinstance(obj, Brain):
        return obj
    if isinstance(obj, Workflow):
        return WorkflowBrain(obj)
    if callable(obj):
        return WorkflowBrain(SimpleWorkflow(obj))
    raise TypeError(
        f"a brain must have respond(turn), or be a voice.Workflow or a callable, got {type(obj).__name__}"
    )


BrainSource = Any
"""What ``RealtimeServer(workflow=...)`` accepts: None (echo), a Brain or Workflow instance (shared by all
sessions), a class of either (instantiated once per session, for per-session state), or ``fn(text)``."""


def brain_factory(source: BrainSource) -> Any:
    """A zero-argument callable making the brain of one new session."""
    if isinstance(source, type):
        cls = source
        return lambda: as_brain(cls())
    brain = as_brain(source)
    return lambda: brain


def load_brain(spec: str) -> BrainSource:
    """Import ``module:attr`` (``attr`` may be dotted) for ``--workflow``; ValueError says what is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--workflow must look like module:attr, got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    brain_factory(obj)  # fail now, at startup, on something that is not a brain
    return obj
