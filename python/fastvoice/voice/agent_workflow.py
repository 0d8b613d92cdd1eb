"""`AgentWorkflow`: an LLM agent as a pipeline workflow, on the Responses API, streamed.

Each `run(text)` appends the user's turn to the history, `POST`s `/responses` with
`stream: true` and yields `response.output_text.delta` pieces as they arrive, so the pipeline
can speak the first sentence while the model is still writing the rest. Function calls the
model makes are run (the same `function_tool` as realtime) and answered with
`function_call_output` items, then the model continues, for at most `max_tool_rounds` rounds.
The history is sent in full each time (no server-side state), so it works with `store: false`
and with any Responses-compatible server.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
import types
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Self

from fastvoice.realtime.tools import FunctionTool, ToolContext, function_tool
from fastvoice.voice._hosted_tools import hosted_tool
from fastvoice.voice._telemetry import _emit
from fastvoice.voice.providers._http import HTTPClient, OpenAIStatusError, RetryPolicy, sse_events

__all__ = ["DEFAULT_AGENT_MODEL", "AgentWorkflow", "AgentWorkflowError"]

logger = logging.getLogger("fastvoice")

DEFAULT_AGENT_MODEL = "gpt-4.1-mini"


class AgentWorkflowError(OpenAIStatusError):
    """The Responses API failed (an error status, a `response.failed`/`error` event, or a stream
    that ended before `response.completed`)."""


def _field(agent: Any, name: str, default: Any = None) -> Any:
    if isinstance(agent, Mapping):
        return agent.get(name, default)
    return getattr(agent, name, default)


def _as_tool(tool: Any, index: int) -> FunctionTool | dict[str, Any]:
    if isinstance(tool, FunctionTool):
        return tool
    if isinstance(tool, Mapping):
        return hosted_tool(tool, index)
    if callable(tool) and not isinstance(tool, type):
        made: FunctionTool = function_tool(tool)
        return made
    raise TypeError(
        "AgentWorkflow tools must be function_tool objects, functions or hosted tool dicts"
        f" (e.g. {{'type': 'web_search'}}), got {type(tool).__name__}"
    )


class AgentWorkflow:
    """`AgentWorkflow(agent={"instructions": ..., "tools": [...]}, model=None)`.

    `agent` is a mapping or any object with `instructions` (str) and `tools`, e.g. a
    `realtime.RealtimeAgent`. A tool is a function tool or a plain function (wrapped with
    `function_tool`, run here when the model calls it), or a hosted tool as a Responses API
    tool dict (`{"type": "file_search", "vector_store_ids": [...]}`, `web_search`,
    `code_interpreter`, `mcp`, `image_generation`), run by OpenAI and sent unchanged; a
    malformed tool dict raises `ValueError` here.
    `model` defaults to the agent's `model`, else `DEFAULT_AGENT_MODEL`. `history` holds the
    Responses input items of the conversation so far; `reset()` clears it.
    """

    def __init__(
        self,
        agent: Mapping[str, Any] | Any,
        model: str | None = None,
        *,
        greeting: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        max_tool_rounds: int = 8,
        on_tool_call: Callable[[str, str, str], None] | None = None,
    ) -> None:
        instructions = _field(agent, "instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise TypeError("agent instructions must be a str")
        self.instructions: str | None = instructions
        tools = [_as_tool(t, i) for i, t in enumerate(_field(agent, "tools") or [])]
        self.tools: list[FunctionTool] = [t for t in tools if isinstance(t, FunctionTool)]
        #: Hosted tool dicts, in the request after the function tools.
        self.hosted_tools: list[dict[str, Any]] = [t for t in tools if isinstance(t, dict)]
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names: {names}")
        agent_model = _field(agent, "model")
        self.model: str = (
            model or (agent_model if isinstance(agent_model, str) else None) or DEFAULT_AGENT_MODEL
        )
        self.max_tool_rounds = max_tool_rounds
        self.history: list[dict[str, Any]] = []
        self._greeting = greeting
        self._on_tool_call = on_tool_call
        self._client = HTTPClient(api_key, base_url, retry)
        self._lock = asyncio.Lock()

    def greeting(self) -> str | None:
        return self._greeting

    def reset(self) -> None:
        self.history.clear()

    def request_body(self) -> dict[str, Any]:
        """The `/responses` body for the current history (`ResponseCreateParams`)."""
        body: dict[str, Any] = {"model": self.model, "input": list(self.history), "stream": True}
        if self.instructions:
            body["instructions"] = self.instructions
        if self.tools or self.hosted_tools:
            body["tools"] = [
                *({**t.to_session_tool(), "strict": t.strict_json_schema} for t in self.tools),
                *(copy.deepcopy(t) for t in self.hosted_tools),
            ]
        return body

    def run(self, text: str) -> AsyncIterator[str]:
        return self._run(text)

    async def _run(self, text: str) -> AsyncIterator[str]:
        # One turn at a time: two interleaved turns would interleave their history items.
        async with self._lock:
            self.history.append({"role": "user", "content": text})
            for _ in range(self.max_tool_rounds + 1):
                calls: list[dict[str, Any]] = []
                parts: list[str] = []
                stream = self._stream(calls)
                try:
                    async for piece in stream:
                        parts.append(piece)
                        yield piece
                finally:  # closed early (the pipeline was stopped): release the HTTP response now
                    await stream.aclose()
                if parts:
                    self.history.append({"role": "assistant", "content": "".join(parts)})
                    if calls and not parts[-1][-1:].isspace():
                        yield "\n"  # end the sentence now: the next text comes after the tools ran
                if not calls:
                    return
                for call in calls:
                    self.history.append(call)
                outputs = await asyncio.gather(*(self._call_tool(c) for c in calls))
                self.history.extend(outputs)
            raise AgentWorkflowError(
                f"the model kept calling tools after {self.max_tool_rounds} rounds", status=0
            )

    async def _stream(self, calls: list[dict[str, Any]]) -> AsyncGenerator[str, None]:
        body = self.request_body()
        meta = {"model": self.model}
        logger.debug(
            "fastvoice voice: responses request model %s: %d input items, %d function + %d hosted tools",
            self.model,
            len(self.history),
            len(self.tools),
            len(self.hosted_tools),
        )
        _emit(("fastvoice", "voice", "llm", "start"), {"system_time": time.time()}, meta)
        resp = await self._client.request(
            "/responses", "the Responses API", AgentWorkflowError, lambda s, url: s.post(url, json=body)
        )
        completed = False
        try:
            async for event in sse_events(resp):
                etype = event.get("type")
                if etype == "response.output_text.delta":
                    delta = event.get("delta")
                    if isinstance(delta, str) and delta:
                        yield delta
                elif etype == "response.output_item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        calls.append(
                            {
                                "type": "function_call",
                                "call_id": str(item.get("call_id", "")),
                                "name": str(item.get("name", "")),
                                "arguments": str(item.get("arguments", "")),
                            }
                        )
                elif etype == "response.completed":
                    completed = True
                    break
                elif etype in ("response.failed", "response.incomplete", "error"):
                    err = event.get("error") or (event.get("response") or {}).get("error") or {}
                    message = err.get("message") if isinstance(err, dict) else None
                    raise AgentWorkflowError(
                        f"the Responses API reported {etype}: {message or err}", status=0
                    )
        except (TimeoutError, self._client.client_errors) as exc:
            raise AgentWorkflowError(f"the Responses stream broke off: {exc}", status=0) from exc
        except json.JSONDecodeError as exc:
            raise AgentWorkflowError(f"the Responses stream sent invalid JSON: {exc}", status=0) from exc
        finally:
            resp.release()
        if not completed:
            raise AgentWorkflowError("the Responses stream ended before response.completed", status=0)

    async def _call_tool(self, call: dict[str, Any]) -> dict[str, Any]:
        tool = next((t for t in self.tools if t.name == call["name"]), None)
        if tool is None:
            output = f"An error occurred while running the tool. Error: no tool named {call['name']!r}"
        else:
            ctx = ToolContext(tool_name=tool.name, call_id=call["call_id"], arguments=call["arguments"])
            output = (await tool.invoke_safe(call["arguments"], ctx)).output
        if self._on_tool_call is not None:
            self._on_tool_call(call["name"], call["arguments"], output)
        _emit(("fastvoice", "voice", "tool", "call"), {}, {"name": call["name"]})
        logger.debug("fastvoice voice: tool call %s (%d chars of output)", call["name"], len(output))
        return {"type": "function_call_output", "call_id": call["call_id"], "output": output}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self.aclose()
