"""Tool calls, approvals, handoffs and output guardrails of a session.

Function tools run in their own tasks: a slow tool (a database query, an HTTP call) must not stop the session
from playing audio, hearing a barge-in or answering other calls. Each result is sent the moment it exists; the
``response.create`` that follows goes through the session's coalescing, so several tools finishing together
(or a tool finishing while a response is still streaming) yield one new response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastvoice import telemetry
from fastvoice.realtime import _protocol as P
from fastvoice.realtime import events as ev
from fastvoice.realtime.agent import Agent, OutputGuardrail
from fastvoice.realtime.tools import FunctionTool, ToolContext, ToolResult

if TYPE_CHECKING:
    from fastvoice.realtime.session import Session

__all__ = ["GuardrailRunner", "ToolRunner"]

logger = logging.getLogger("fastvoice")

REJECTED_TEXT = "The user rejected this tool call."


def _span(name: str, attributes: dict[str, Any]) -> Any:
    tracer = telemetry._tracer()
    return tracer.start_span(name, attributes=attributes) if tracer is not None else None


class ToolRunner:
    """Handles the model's function calls for one session."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._seen: set[str] = set()
        self.pending_approvals: dict[str, tuple[FunctionTool, str, Agent]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def on_function_call(self, item: dict[str, Any], out: list[Any]) -> None:
        """A completed ``function_call`` item from the server (each ``call_id`` handled once)."""
        call_id = str(item.get("call_id") or "")
        name = str(item.get("name") or "")
        args = str(item.get("arguments") or "")
        if not call_id or call_id in self._seen:
            return
        self._seen.add(call_id)
        s = self._s
        agent = s.agent
        telemetry.execute(
            telemetry.REALTIME_TOOL_CALL,
            {"monotonic_time": time.monotonic_ns(), "args_bytes": len(args)},
            {"session_id": s.session_id, "tool": name, "call_id": call_id, "agent": agent.name},
        )
        logger.debug("fastvoice session %s: tool call %s", s.session_id, name)
        out.append(ev.RealtimeToolCallEvent(name=name, args=args, call_id=call_id))
        handoff = agent.find_handoff(name)
        if handoff is not None:
            self._handoff(handoff, call_id, out)
            return
        tool = agent.function_tools.get(name)
        if tool is not None:
            if tool.needs_approval:
                self.pending_approvals[call_id] = (tool, args, agent)
                out.append(ev.RealtimeToolApprovalRequiredEvent(name=name, args=args, call_id=call_id))
            else:
                self.start(tool, call_id, args, agent)
            return
        if name in agent.client_tools:
            s.set_state("thinking", out)
            return  # the application answers with send_tool_result
        text = f"Tool {name} not found"
        out.append(ev.RealtimeErrorEvent(error=LookupError(text)))
        s.queue_frame(P.function_call_output(call_id, text))
        s.request_response()

    def _handoff(self, handoff: Any, call_id: str, out: list[Any]) -> None:
        s = self._s
        old = s.agent
        try:
            new = handoff.resolve()
        except Exception as exc:
            out.append(ev.RealtimeErrorEvent(error=exc))
            s.queue_frame(P.function_call_output(call_id, f"Handoff failed: {exc}"))
            s.request_response()
            return
        s.switch_agent(new)
        s.queue_frame(P.function_call_output(call_id, handoff.transfer_message()))
        s.request_response()
        out.append(ev.RealtimeHandoffEvent(from_agent=old, to_agent=new))

    def start(self, tool: FunctionTool, call_id: str, args: str, agent: Agent) -> None:
        task = asyncio.get_running_loop().create_task(self._run(tool, call_id, args, agent))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, tool: FunctionTool, call_id: str, args: str, agent: Agent) -> None:
        s = self._s
        s.deliver([ev.RealtimeToolStartEvent(name=tool.name, args=args, call_id=call_id)])
        s.set_state("thinking")
        span = _span("fastvoice.realtime.tool", {"tool": tool.name, "call_id": call_id})
        start = time.monotonic_ns()
        ctx = ToolContext(tool_name=tool.name, call_id=call_id, arguments=args, agent=agent)
        try:
            result = await tool.invoke_safe(args, ctx)
        except asyncio.CancelledError:
            if span is not None:
                span.end()
            raise
        except Exception as exc:  # failure_error_function=None re-raises: still answer the model
            result = ToolResult(f"An error occurred while running the tool. Error: {exc}", exc)
        fmt = s.config.tool_error_formatter
        output = result.output
        if result.error is not None and fmt is not None:
            output = fmt(tool.name, result.error)
        duration = time.monotonic_ns() - start
        if span is not None:
            span.set_attribute("is_error", result.error is not None)
            span.end()
        telemetry.execute(
            telemetry.REALTIME_TOOL_RESULT,
            {"duration": duration, "output_bytes": len(output)},
            {
                "session_id": s.session_id,
                "tool": tool.name,
                "call_id": call_id,
                "is_error": result.error is not None,
            },
        )
        if s.closed:
            return
        await s.send_frame(P.function_call_output(call_id, output))
        evs: list[Any] = [
            ev.RealtimeToolEndEvent(
                name=tool.name, call_id=call_id, output=output, is_error=result.error is not None
            )
        ]
        if result.error is not None:
            evs.append(ev.RealtimeErrorEvent(error=result.error))
        s.deliver(evs)
        s.request_response()
        await s.flush()

    async def approve(self, call_id: str) -> None:
        tool, args, agent = self._pop(call_id)
        self.start(tool, call_id, args, agent)

    async def reject(self, call_id: str, message: str | None) -> None:
        tool, _args, _agent = self._pop(call_id)
        text = message if message is not None else REJECTED_TEXT
        s = self._s
        await s.send_frame(P.function_call_output(call_id, text))
        s.deliver([ev.RealtimeToolEndEvent(name=tool.name, call_id=call_id, output=text, is_error=False)])
        s.request_response()
        await s.flush()

    def _pop(self, call_id: str) -> tuple[FunctionTool, str, Agent]:
        try:
            return self.pending_approvals.pop(call_id)
        except KeyError:
            raise ValueError(f"no tool call {call_id!r} is waiting for approval") from None

    def cancel(self) -> list[asyncio.Task[None]]:
        current = asyncio.current_task()  # stop() may be called from inside a tool or guardrail
        tasks = [t for t in self.tasks if t is not current]
        for t in tasks:
            t.cancel()
        return tasks


class GuardrailRunner:
    """Output guardrails over the assistant transcript, run every ``debounce`` characters and at the end."""

    def __init__(self, session: Session, debounce: int) -> None:
        self._s = session
        self._debounce = debounce
        self._text: dict[str, str] = {}  # response id -> transcript so far
        self._next: dict[str, int] = {}
        self._tripped: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def guardrails(self) -> tuple[OutputGuardrail, ...]:
        s = self._s
        extra = tuple(
            g if isinstance(g, OutputGuardrail) else OutputGuardrail(g) for g in s.config.output_guardrails
        )
        return s.agent.output_guardrails + extra

    def on_delta(self, response_id: str, delta: str) -> None:
        if not self.guardrails() or response_id in self._tripped:
            return
        text = self._text.get(response_id, "") + delta
        self._text[response_id] = text
        if len(text) >= self._next.get(response_id, self._debounce):
            self._next[response_id] = len(text) + self._debounce
            self._check(response_id, text)

    def on_done(self, response_id: str, transcript: str) -> None:
        if not self.guardrails() or response_id in self._tripped:
            return
        self._text.pop(response_id, None)
        self._next.pop(response_id, None)
        self._check(response_id, transcript)

    def _check(self, response_id: str, text: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(response_id, text))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, response_id: str, text: str) -> None:
        s = self._s
        agent = s.agent
        for g in self.guardrails():
            try:
                result = await g.run(agent, text)
            except Exception as exc:
                s.deliver([ev.RealtimeErrorEvent(error=exc)])
                continue
            if result.tripwire_triggered and response_id not in self._tripped and not s.closed:
                self._tripped.add(response_id)
                await s.guardrail_tripped(g.name, text, result.output_info, response_id)
                return

    def cancel(self) -> list[asyncio.Task[None]]:
        current = asyncio.current_task()  # stop() may be called from inside a tool or guardrail
        tasks = [t for t in self.tasks if t is not current]
        for t in tasks:
            t.cancel()
        return tasks


def tool_output_text(result: object) -> str:
    """``send_tool_result`` accepts a str as-is, anything else JSON-encoded."""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"tool result must be a str or JSON-serializable, got {type(result).__name__}"
        ) from exc
