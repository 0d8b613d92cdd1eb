"""HTTP plumbing shared by the OpenAI voice providers and `AgentWorkflow`: base URL, auth
headers, bounded retries with backoff, typed status errors and a server-sent-events reader.

Retries happen only before a response body has been handed to the caller: once audio or text
has been emitted, replaying the request would duplicate it, so a stream that breaks later is
an error for the turn, not a retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastvoice.realtime.auth import redact, require_api_key, scrub
from fastvoice.voice.events import ProviderUnavailableError, VoiceError

if TYPE_CHECKING:  # aiohttp is the `openai` extra: `import fastvoice.voice` must work without it
    import aiohttp


def _aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:
        raise ProviderUnavailableError(
            "the OpenAI voice providers and AgentWorkflow need aiohttp: pip install 'fastvoice[openai]'"
        ) from exc
    return aiohttp


DEFAULT_BASE_URL = "https://api.openai.com/v1"

logger = logging.getLogger("fastvoice")

#: Statuses worth retrying: rate limits, timeouts, conflicts and server errors.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def base_url(explicit: str | None = None) -> str:
    """`explicit`, else `OPENAI_BASE_URL`, else the public API; never with a trailing slash."""
    url = explicit or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


def websocket_url(base: str, path: str, query: str) -> str:
    """`https://host/v1` + `/realtime` -> `wss://host/v1/realtime?query` (http -> ws)."""
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}{path}?{query}" if query else f"{base}{path}"


class OpenAIStatusError(VoiceError):
    """The API answered with an error status. `status`, `code` and `error_type` come from the
    response; the message never contains the API key (it is scrubbed if the server echoes it)."""

    def __init__(self, message: str, *, status: int, code: str | None = None, error_type: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.error_type = error_type


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `max_retries` more attempts after the first, waiting `base_delay * 2**n` (with
    ±25% jitter, capped at `max_delay`) or the server's `Retry-After` if that is shorter than
    `max_delay`."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass
        raw = self.base_delay * (2**attempt)
        return float(min(raw * random.uniform(0.75, 1.25), self.max_delay))


def _scrub(text: str, key: str) -> str:
    # One rule with the transport's (fastvoice.realtime.auth.scrub): the key, Bearer tokens, sk-… keys.
    return scrub(text, key)


async def _status_error(
    resp: aiohttp.ClientResponse, what: str, key: str, error_cls: type[OpenAIStatusError]
) -> OpenAIStatusError:
    try:
        raw = await resp.text()
    except (_aiohttp().ClientError, UnicodeDecodeError):
        raw = ""
    message, code, etype = raw.strip()[:300], None, None
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            code = err.get("code") if isinstance(err.get("code"), str) else None
            etype = err.get("type") if isinstance(err.get("type"), str) else None
    except (ValueError, AttributeError):
        pass
    hint = " (check the API key)" if resp.status == 401 else ""
    text = f"{what} failed: HTTP {resp.status}{hint}: {message or resp.reason}"
    return error_cls(_scrub(text, key), status=resp.status, code=code, error_type=etype)


class HTTPClient:
    """One aiohttp session (kept alive across requests: the connection setup would otherwise
    land on every turn's latency) plus the key, base URL and retry policy."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url_: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._key = require_api_key(api_key)
        self.base_url = base_url(base_url_)
        self.retry = retry if retry is not None else RetryPolicy()
        self._aiohttp = _aiohttp()
        self._timeout = self._aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def client_errors(self) -> type[Exception]:
        """aiohttp's base error class (for callers that must not import aiohttp eagerly)."""
        errors: type[Exception] = self._aiohttp.ClientError
        return errors

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def __repr__(self) -> str:
        return f"HTTPClient(base_url={self.base_url!r}, api_key={redact(self._key)!r})"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._aiohttp.ClientSession(timeout=self._timeout, headers=self.auth_headers)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        path: str,
        what: str,
        error_cls: type[OpenAIStatusError],
        send: Callable[[aiohttp.ClientSession, str], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        """A successful (2xx) response whose body is still unread; the caller releases it.

        `send(session, url)` issues the request (called again on each retry, so a multipart
        body is rebuilt). Retryable statuses and connection failures are retried per the
        policy; other 4xx raise `error_cls` at once.
        """
        url = self.base_url + path
        attempt = 0
        while True:
            retry_after: str | None = None
            t0 = time.perf_counter()
            try:
                resp = await send(self.session(), url)
            except (TimeoutError, self._aiohttp.ClientConnectionError) as exc:
                # Only the exception's type: its text may quote a proxy or server answer.
                logger.debug(
                    "fastvoice voice: POST %s (%s) attempt %d failed: %s",
                    path,
                    what,
                    attempt + 1,
                    type(exc).__name__,
                )
                if attempt >= self.retry.max_retries:
                    raise error_cls(f"{what} failed: {type(exc).__name__}: {exc}", status=0) from exc
            else:
                # Headers first: the body streams later and is logged by the caller in sizes only.
                logger.debug(
                    "fastvoice voice: POST %s (%s) attempt %d -> HTTP %d in %.0f ms",
                    path,
                    what,
                    attempt + 1,
                    resp.status,
                    (time.perf_counter() - t0) * 1000,
                )
                if resp.status < 300:
                    return resp
                err = await _status_error(resp, what, self._key, error_cls)
                retry_after = resp.headers.get("Retry-After")
                resp.release()
                if resp.status not in RETRY_STATUSES or attempt >= self.retry.max_retries:
                    raise err
            await asyncio.sleep(self.retry.delay(attempt, retry_after))
            attempt += 1


async def sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON `data:` payloads of a server-sent-events body, one dict per event."""
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                payload = "\n".join(data)
                data = []
                if payload != "[DONE]":
                    yield json.loads(payload)
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data and (payload := "\n".join(data)) != "[DONE]":
        yield json.loads(payload)
