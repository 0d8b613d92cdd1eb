"""A scripted, local stand-in for the OpenAI Realtime API (GA protocol) over a real WebSocket.

``FakeRealtimeServer`` listens on 127.0.0.1 (aiohttp), answers the protocol the way the real service does in
the cases clients care about, records everything it receives, and is driven by the test::

    async with FakeRealtimeServer() as server:
        server.on_commit(ScriptedResponse(audio=[pcm_chunk] * 5, transcript="Hello!"))
        session = await realtime.start_session(agent, config, url=server.url, api_key="test")
        ...
        await server.wait_for("input_audio_buffer.commit")
        await server.call_tool("get_weather", {"city": "Paris"})
        await server.drop()                      # abrupt TCP close, no close frame

Behaviour copied from the real service because sessions must cope with it: ``session.created`` on connect;
``session.updated`` with the merged config; an ``error`` (not a disconnect) for malformed or unknown client
events; commits under 100 ms rejected; ``response.create`` during an active response rejected
(``conversation_already_has_active_response``); ``conversation.item.truncate`` past the audio actually sent
rejected; cancelled responses end with ``response.done`` status ``cancelled``; changing ``model``, or
``voice`` after audio was produced, rejected. Every event it sends is checked against ``RealtimeServerEvent``
with unknown fields forbidden (``strict=True``, the default), so a test cannot pass on a shape the real API
would never send.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from aiohttp import WSMsgType, web

from fastvoice.realtime._protocol import BETA_SERVER_EVENT_ALIASES
from fastvoice.realtime.auth import redact
from fastvoice.testing._script import (
    IdGen,
    ScriptedResponse,
    ScriptedToolCall,
    response_done,
    response_events,
)
from fastvoice.testing._state import (
    Active,
    Conn,
    ConnectionInfo,
    ReceivedFrame,
    bytes_per_ms,
    default_session,
    merge,
)
from fastvoice.testing.validation import EventValidationError, validate_client_event, validate_server_event

__all__ = ["ConnectionInfo", "FakeRealtimeServer", "ReceivedFrame", "ResponseScript"]

_GA_TO_BETA = {ga: beta for beta, ga in BETA_SERVER_EVENT_ALIASES.items()}

ResponseScript: TypeAlias = (
    ScriptedResponse | Sequence[ScriptedResponse] | Callable[[dict[str, Any]], ScriptedResponse | None] | None
)
"""One response for every trigger, a list consumed one per trigger (then nothing), or a callable of the
triggering client event."""


class FakeRealtimeServer:
    """See the module docstring. Use as ``async with FakeRealtimeServer() as server`` (or
    ``start``/``stop``)."""

    def __init__(
        self,
        *,
        strict: bool = True,
        api_key: str | None = None,
        model: str = "gpt-realtime",
        min_commit_ms: float = 100.0,
        host: str = "127.0.0.1",
        port: int = 0,
        beta_event_names: bool = False,
    ) -> None:
        self.strict = strict
        # Send beta names (response.audio.delta, ...) for events that have one, to test clients that must
        # understand both; the GA form is what gets validated.
        self.beta_event_names = beta_event_names
        self.min_commit_ms = min_commit_ms
        self._api_key = api_key
        self._model = model
        self._host, self._port = host, port
        self._ids = IdGen()
        self._runner: web.AppRunner | None = None
        self._conns: list[Conn] = []
        self._cond = asyncio.Condition()
        self._cursors: dict[str, int] = {}
        self._commit_script: ResponseScript = None
        self._commit_transcript: str | None = None
        self._create_script: ResponseScript = None
        self.received: list[ReceivedFrame] = []
        self.sent: list[dict[str, Any]] = []
        self.connections: list[ConnectionInfo] = []
        self.truncations: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        """Failures inside the server's own tasks (e.g. a scripted event that fails strict validation)."""

    # ---- lifecycle
    # ----------------------------------------------------------------------------------------------

    async def start(self) -> FakeRealtimeServer:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # Port 0 asks the OS for a free port; read back the one it picked.
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for conn in list(self._conns):
            await self._cancel_active(conn, None, notify=False)
            if not conn.ws.closed:
                await conn.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRealtimeServer:
        return await self.start()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self.stop()
        if exc_type is None and self.errors:
            raise self.errors[0]

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT/v1/realtime``; clients may append ``?model=...``."""
        return f"ws://{self._host}:{self._port}/v1/realtime"

    # ---- inspection
    # ---------------------------------------------------------------------------------------------

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Valid client events received so far (all connections), optionally of one type."""
        return [
            f.data
            for f in self.received
            if f.valid and f.data and (event_type is None or f.data["type"] == event_type)
        ]

    @property
    def invalid_frames(self) -> list[ReceivedFrame]:
        return [f for f in self.received if not f.valid]

    @property
    def session(self) -> dict[str, Any]:
        """The effective session config of the latest connection."""
        return self._latest().session

    @property
    def input_audio(self) -> bytes:
        """All input audio appended so far, over all connections, in order."""
        return b"".join(bytes(c.input_audio) for c in self.connections)

    async def wait_for(self, event_type: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for a client event of ``event_type``. Successive calls return successive events of that type
        (each call consumes one), including events received before the call."""
        index = self._cursors.get(event_type, 0)

        def found() -> dict[str, Any] | None:
            matches = self.events(event_type)
            return matches[index] if len(matches) > index else None

        try:
            async with self._cond:
                event: dict[str, Any] | None = await asyncio.wait_for(self._cond.wait_for(found), timeout)
        except TimeoutError:
            seen = [f.data.get("type") if f.data else "<invalid>" for f in self.received]
            raise TimeoutError(
                f"no client event {event_type!r} (#{index + 1}) within {timeout}s; got {seen}"
            ) from None
        self._cursors[event_type] = index + 1
        assert event is not None  # wait_for() only returns once found() is truthy
        return event

    async def wait_for_connection(self, count: int = 1, timeout: float = 5.0) -> ConnectionInfo:
        """Wait until ``count`` connections have been accepted; returns the ``count``-th."""
        async with self._cond:
            await asyncio.wait_for(self._cond.wait_for(lambda: len(self.connections) >= count), timeout)
        return self.connections[count - 1]

    async def wait_for_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until no connection is open."""
        async with self._cond:
            await asyncio.wait_for(
                self._cond.wait_for(lambda: all(c.closed for c in self.connections)), timeout
            )

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no scripted response is being played."""
        deadline = time.monotonic() + timeout
        while any(c.active is not None for c in self._conns):
            if time.monotonic() > deadline:
                raise TimeoutError("a scripted response is still playing")
            await asyncio.sleep(0.005)

    # ---- scripting
    # ----------------------------------------------------------------------------------------------

    def on_commit(self, response: ResponseScript = None, *, transcript: str | None = None) -> None:
        """Answer each ``input_audio_buffer.commit`` with ``response`` (after ``committed``), and with an
        input transcription of ``transcript`` when given."""
        self._commit_script = response
        self._commit_transcript = transcript

    def on_response_create(self, response: ResponseScript = None) -> None:
        """Answer ``response.create`` with ``response`` (default: an empty completed response)."""
        self._create_script = response

    async def send(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Send a server event to the latest connection (``event_id`` is filled in; validated when strict)."""
        return await self._emit(self._latest(), dict(event))

    async def send_raw(self, text: str) -> None:
        """Send text as-is, unvalidated: malformed JSON, beta event names, unknown events."""
        conn = self._latest()
        async with conn.lock:
            await conn.ws.send_str(text)

    async def respond(self, response: ScriptedResponse, *, connection: int | None = None) -> str:
        """Play ``response`` now on the latest connection (or the one whose ``ConnectionInfo.index`` is
        ``connection``) and wait for it to finish; returns its id."""
        conn = self._latest() if connection is None else self._by_index(connection)
        if conn.active is not None:  # a test-side mistake: tell the test, not the client
            raise RuntimeError(f"response {conn.active.response_id} is still in progress")
        rid = await self._start_response(conn, response, None)
        assert rid is not None
        active = conn.active
        if active is not None and active.response_id == rid:
            await asyncio.gather(active.task, return_exceptions=True)
        return rid

    async def call_tool(
        self, name: str, args: Mapping[str, Any] | str | None = None, call_id: str | None = None
    ) -> str:
        """Make the "model" call a tool (a response holding one function_call item); returns the call_id."""
        call_id = call_id or self._ids("call")
        await self.respond(ScriptedResponse(tool_calls=[ScriptedToolCall(name, args or {}, call_id)]))
        return call_id

    async def speech_started(self, audio_start_ms: int = 0) -> str:
        """Server VAD saw the user start speaking; cancels the active response if ``interrupt_response``."""
        conn = self._latest()
        item_id = self._ids("item")
        await self._emit(
            conn,
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": item_id,
            },
        )
        td = (conn.session.get("audio") or {}).get("input", {}).get("turn_detection")
        if td and td.get("interrupt_response", True):
            await self._cancel_active(conn, "turn_detected")
        return item_id

    async def speech_stopped(self, audio_end_ms: int, item_id: str) -> None:
        await self._emit(
            self._latest(),
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id},
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the latest connection with a close frame."""
        conn = self._latest()
        await self._cancel_active(conn, None, notify=False)
        await conn.ws.close(code=code, message=reason.encode())

    async def drop(self) -> None:
        """Abort the latest connection's TCP socket: no close frame, like a network failure."""
        conn = self._latest()
        await self._cancel_active(conn, None, notify=False)
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    # ---- internals
    # ----------------------------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        """Subclasses serving more of the API on the same port (``FakeSipServer``) add their routes here."""

    def _initial_session(self, request: web.Request) -> dict[str, Any]:
        """The session a new connection starts with (a subclass may start from an accepted call's)."""
        return default_session(request.query.get("model", self._model))

    def _by_index(self, index: int) -> Conn:
        for conn in self._conns:
            if conn.info.index == index and not conn.info.closed:
                return conn
        raise RuntimeError(f"no open connection {index} on the FakeRealtimeServer")

    def _latest(self) -> Conn:
        for conn in reversed(self._conns):
            if not conn.info.closed:
                return conn
        raise RuntimeError("no client is connected to the FakeRealtimeServer")

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _emit(self, conn: Conn, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("event_id", self._ids("event"))
        if self.strict:
            validate_server_event(event)
        if self.beta_event_names:
            event["type"] = _GA_TO_BETA.get(event["type"], event["type"])
        async with conn.lock:
            await conn.ws.send_str(json.dumps(event))
        self.sent.append(event)
        return event

    async def _error(self, conn: Conn, code: str, message: str, client_event_id: Any = None) -> None:
        error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
        if isinstance(client_event_id, str):
            error["event_id"] = client_event_id
        await self._emit(conn, {"type": "error", "error": error})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._api_key is not None and request.headers.get("Authorization") != f"Bearer {self._api_key}":
            body = {
                "error": {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key"}
            }
            return web.json_response(body, status=401)
        headers = {k: v for k, v in request.headers.items()}
        if "Authorization" in headers:
            headers["Authorization"] = "Bearer " + redact(headers["Authorization"].removeprefix("Bearer "))
        info = ConnectionInfo(len(self.connections), request.path, dict(request.query), headers)
        # A short close timeout: stop() must not hang on a client that never answers the close frame.
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024, autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn = Conn(info, ws, request, self._initial_session(request))
        self._conns.append(conn)
        self.connections.append(info)
        await self._notify()
        try:
            await self._emit(conn, {"type": "session.created", "session": copy.deepcopy(conn.session)})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.received.append(
                        ReceivedFrame(info.index, repr(msg.data[:64]), None, False, "binary frame")
                    )
                    await self._error(
                        conn, "invalid_event", "binary frames are not supported; send JSON text"
                    )
        except EventValidationError as exc:
            self.errors.append(exc)
        except ConnectionResetError:
            pass
        finally:
            info.closed = True
            await self._cancel_active(conn, None, notify=False)
            await self._notify()
        return ws

    async def _on_text(self, conn: Conn, raw: str) -> None:
        idx = conn.info.index
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.received.append(
                ReceivedFrame(idx, raw, None, False, f"invalid JSON: {exc}", time.monotonic())
            )
            await self._notify()
            await self._error(
                conn, "invalid_json", f"We could not parse the JSON body of your request: {exc}"
            )
            return
        try:
            validate_client_event(data)
        except EventValidationError as exc:
            parsed = data if isinstance(data, dict) else None
            self.received.append(ReceivedFrame(idx, raw, parsed, False, str(exc), time.monotonic()))
            await self._notify()
            event_id = parsed.get("event_id") if parsed else None
            await self._error(conn, "invalid_event", f"Invalid client event: {exc}", event_id)
            return
        self.received.append(ReceivedFrame(idx, raw, data, True, None, time.monotonic()))
        await self._notify()
        handler = getattr(self, "_on_" + data["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(conn, data)

    async def _on_session_update(self, conn: Conn, event: dict[str, Any]) -> None:
        update = event["session"]
        if update.get("type") != "realtime":
            await self._error(
                conn, "invalid_value", "only realtime sessions are supported", event.get("event_id")
            )
            return
        if "model" in update and update["model"] != conn.session["model"]:
            current = conn.session["model"]
            msg = f"Cannot update a session's model (it is {current}; choose it with ?model= in the URL)"
            await self._error(conn, "invalid_value", msg, event.get("event_id"))
            return
        voice = (update.get("audio") or {}).get("output", {}).get("voice")
        if voice is not None and conn.any_audio and voice != conn.session["audio"]["output"]["voice"]:
            msg = "Cannot update a conversation's voice if assistant audio is present."
            await self._error(conn, "cannot_update_voice", msg, event.get("event_id"))
            return
        merge(conn.session, update)
        await self._emit(conn, {"type": "session.updated", "session": copy.deepcopy(conn.session)})

    async def _on_input_audio_buffer_append(self, conn: Conn, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            await self._error(conn, "invalid_value", "audio is not valid base64", event.get("event_id"))
            return
        conn.buffer += audio
        conn.info.input_audio += audio

    async def _on_input_audio_buffer_clear(self, conn: Conn, event: dict[str, Any]) -> None:
        conn.buffer.clear()
        conn.info.committed_audio = len(conn.info.input_audio)  # what was cleared is not pending either
        await self._emit(conn, {"type": "input_audio_buffer.cleared"})

    async def _on_input_audio_buffer_commit(self, conn: Conn, event: dict[str, Any]) -> None:
        ms = len(conn.buffer) / bytes_per_ms(conn.session, "input")
        if ms < self.min_commit_ms:
            msg = (
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{self.min_commit_ms:g}ms of audio, but buffer only has {ms:.2f}ms of audio."
            )
            await self._error(conn, "input_audio_buffer_commit_empty", msg, event.get("event_id"))
            return
        conn.info.committed_audio = len(conn.info.input_audio)
        conn.buffer.clear()
        item_id = self._ids("item")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        prev = conn.last_item_id
        await self._emit(
            conn, {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev}
        )
        await self._add_item(conn, item, prev)
        if self._commit_transcript is not None:
            text = self._commit_transcript
            item["content"][0]["transcript"] = text
            base = {"item_id": item_id, "content_index": 0}
            await self._emit(
                conn, {"type": "conversation.item.input_audio_transcription.delta", **base, "delta": text}
            )
            await self._emit(
                conn,
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    **base,
                    "transcript": text,
                    "usage": {"type": "duration", "seconds": ms / 1000},
                },
            )
        script = self._pick(self._commit_script, event)
        if script is not None:
            await self._start_response(conn, script, event)

    async def _add_item(self, conn: Conn, item: dict[str, Any], prev: str | None) -> None:
        conn.items[item["id"]] = item
        conn.last_item_id = item["id"]
        await self._emit(
            conn, {"type": "conversation.item.added", "previous_item_id": prev, "item": copy.deepcopy(item)}
        )
        await self._emit(
            conn, {"type": "conversation.item.done", "previous_item_id": prev, "item": copy.deepcopy(item)}
        )

    async def _on_conversation_item_create(self, conn: Conn, event: dict[str, Any]) -> None:
        item = copy.deepcopy(event["item"])
        item.setdefault("id", self._ids("item"))
        item.setdefault("object", "realtime.item")
        item.setdefault("status", "completed")
        if item["id"] in conn.items:
            await self._error(
                conn, "duplicate_item_id", f"Item {item['id']} already exists", event.get("event_id")
            )
            return
        await self._add_item(conn, item, event.get("previous_item_id") or conn.last_item_id)

    async def _on_conversation_item_retrieve(self, conn: Conn, event: dict[str, Any]) -> None:
        item = conn.items.get(event["item_id"])
        if item is None:
            await self._error(
                conn, "item_not_found", f"Item {event['item_id']} not found", event.get("event_id")
            )
            return
        await self._emit(conn, {"type": "conversation.item.retrieved", "item": copy.deepcopy(item)})

    async def _on_conversation_item_delete(self, conn: Conn, event: dict[str, Any]) -> None:
        if conn.items.pop(event["item_id"], None) is None:
            await self._error(
                conn, "item_not_found", f"Item {event['item_id']} not found", event.get("event_id")
            )
            return
        await self._emit(conn, {"type": "conversation.item.deleted", "item_id": event["item_id"]})

    async def _on_conversation_item_truncate(self, conn: Conn, event: dict[str, Any]) -> None:
        item_id, end_ms = event["item_id"], event["audio_end_ms"]
        item = conn.items.get(item_id)
        if item is None or item.get("role") != "assistant":
            await self._error(conn, "item_not_found", f"No assistant item {item_id}", event.get("event_id"))
            return
        sent_ms = conn.audio_sent.get(item_id, 0) / bytes_per_ms(conn.session, "output")
        if end_ms > sent_ms:
            msg = f"Audio content of {sent_ms:.0f}ms is already shorter than {end_ms}ms"
            await self._error(conn, "invalid_value", msg, event.get("event_id"))
            return
        for part in item.get("content", []):
            if part.get("type") == "output_audio":
                part["transcript"] = None
        self.truncations.append(dict(event))
        await self._emit(
            conn,
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event["content_index"],
                "audio_end_ms": end_ms,
            },
        )

    async def _on_response_create(self, conn: Conn, event: dict[str, Any]) -> None:
        if conn.active is not None:  # rejected before a queued script is consumed
            await self._start_response(conn, ScriptedResponse(), event)
            return
        script = self._pick(self._create_script, event)
        await self._start_response(conn, script or ScriptedResponse(), event)

    async def _on_response_cancel(self, conn: Conn, event: dict[str, Any]) -> None:
        active = conn.active
        wanted = event.get("response_id")
        if active is None or (wanted is not None and wanted != active.response_id):
            msg = "Cancellation failed: no active response found"
            await self._error(conn, "response_cancel_not_active", msg, event.get("event_id"))
            return
        await self._cancel_active(conn, "client_cancelled")

    def _pick(self, script: ResponseScript, event: dict[str, Any]) -> ScriptedResponse | None:
        if script is None or isinstance(script, ScriptedResponse):
            return script
        if callable(script):
            return script(event)
        queue = list(script)
        if not queue:
            return None
        first, rest = queue[0], queue[1:]
        if script is self._commit_script:
            self._commit_script = rest
        elif script is self._create_script:
            self._create_script = rest
        return first

    async def _start_response(
        self, conn: Conn, script: ScriptedResponse, trigger: dict[str, Any] | None
    ) -> str | None:
        if conn.active is not None:
            msg = f"Conversation already has an active response in progress: {conn.active.response_id}"
            await self._error(
                conn, "conversation_already_has_active_response", msg, (trigger or {}).get("event_id")
            )
            return None
        rid, steps, outputs = response_events(script, self._ids, "conv_1", conn.last_item_id)
        modality = "text" if script.text is not None else "audio"
        done: list[dict[str, Any]] = []

        async def play() -> None:
            for step in steps:
                if step.delay_s > 0:
                    await asyncio.sleep(step.delay_s)
                ev = step.event
                if ev["type"] == "conversation.item.added":
                    conn.items[ev["item"]["id"]] = copy.deepcopy(ev["item"])
                    conn.last_item_id = ev["item"]["id"]
                elif ev["type"] == "conversation.item.done":
                    conn.items[ev["item"]["id"]] = copy.deepcopy(ev["item"])
                    done.append(ev["item"])
                elif step.audio_bytes:
                    conn.audio_sent[ev["item_id"]] = conn.audio_sent.get(ev["item_id"], 0) + step.audio_bytes
                    conn.any_audio = True
                await self._emit(conn, copy.deepcopy(ev))
            conn.active = None
            await self._emit(conn, response_done(rid, outputs, modality))

        async def guarded() -> None:
            try:
                await play()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # strict-validation failure or a dead socket
                self.errors.append(exc)
                conn.active = None

        conn.active = Active(rid, asyncio.get_running_loop().create_task(guarded()), done, modality)
        return rid

    async def _cancel_active(self, conn: Conn, reason: str | None, *, notify: bool = True) -> None:
        active = conn.active
        if active is None:
            return
        conn.active = None
        active.task.cancel()
        await asyncio.gather(active.task, return_exceptions=True)
        if notify and not conn.ws.closed:
            for item in conn.items.values():
                if item.get("status") == "in_progress":
                    item["status"] = "incomplete"
            await self._emit(
                conn, response_done(active.response_id, active.outputs, active.modality, "cancelled", reason)
            )
