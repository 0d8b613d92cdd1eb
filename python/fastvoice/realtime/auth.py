"""API key resolution for the Realtime and voice clients.

Precedence (first non-empty wins), as in the Elixir SDK this is ported from:

1. the ``api_key`` passed explicitly;
2. the ``CODEX_API_KEY`` environment variable;
3. ``OPENAI_API_KEY`` in ``auth.json`` under ``CODEX_HOME`` (default ``~/.codex``);
4. the ``OPENAI_API_KEY`` environment variable.

Keys never appear in a repr, an exception message or a log line: :class:`ResolvedAPIKey` hides its value and
:func:`redact` gives the printable form (``sk-…wxyz``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastvoice._fastvoice import scrub_secrets

__all__ = [
    "MissingAPIKeyError",
    "ResolvedAPIKey",
    "auth_json_path",
    "redact",
    "require_api_key",
    "resolve_api_key",
    "resolve_api_key_with_source",
    "scrub",
]

logger = logging.getLogger("fastvoice")

KeySource = Literal["explicit", "CODEX_API_KEY", "auth.json", "OPENAI_API_KEY"]


class MissingAPIKeyError(RuntimeError):
    """No API key was found in any of the places fastvoice looks."""

    def __init__(self, auth_json: Path | None = None) -> None:
        where = f" ({auth_json})" if auth_json is not None else ""
        super().__init__(
            "no OpenAI API key found: pass api_key=..., or set CODEX_API_KEY, or put OPENAI_API_KEY in "
            f"auth.json under CODEX_HOME{where}, or set OPENAI_API_KEY"
        )


def redact(key: str | None) -> str:
    """A printable stand-in for ``key``: its prefix (``sk-``, ``sk-proj-``) and last 4 characters.

    Short keys (under 12 characters) are fully masked, since 4 characters would be a large share of them.
    """
    if not key:
        return "<none>"
    if len(key) < 12:
        return "***"
    prefix = ""
    for p in ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"):
        if key.startswith(p):
            prefix = p
            break
    return f"{prefix}…{key[-4:]}"


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with credentials masked: each of ``secrets`` (e.g. the key a request used), any ``Bearer``
    token, anything shaped like an OpenAI key (``sk-`` and 12+ characters) and the key of an
    ``openai-insecure-api-key.`` subprotocol, each replaced by its :func:`redact` form.

    The same rule the native transport applies to what a server sends back (a refused upgrade's body,
    close reasons), so an echoed ``Authorization`` header never reaches an exception or a log.
    """
    return scrub_secrets(text, [s for s in secrets if s])


@dataclass(frozen=True, slots=True)
class ResolvedAPIKey:
    """A key and where it came from; the repr shows only the redacted form."""

    value: str = field(repr=False)
    source: KeySource

    def __repr__(self) -> str:
        return f"ResolvedAPIKey(value={redact(self.value)!r}, source={self.source!r})"

    __str__ = __repr__


def auth_json_path(env: Mapping[str, str] | None = None) -> Path:
    """``$CODEX_HOME/auth.json`` (``~/.codex/auth.json`` when ``CODEX_HOME`` is unset or empty)."""
    env = os.environ if env is None else env
    home = env.get("CODEX_HOME") or str(Path.home() / ".codex")
    return Path(home).expanduser() / "auth.json"


def _key_from_auth_json(path: Path) -> str | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("fastvoice: cannot read %s: %s", path, type(exc).__name__)
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        # Never echo the file: it holds secrets.
        logger.warning("fastvoice: %s is not valid JSON; ignoring it", path)
        return None
    value = data.get("OPENAI_API_KEY") if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def resolve_api_key_with_source(
    explicit: str | None = None, *, env: Mapping[str, str] | None = None
) -> ResolvedAPIKey | None:
    """Like :func:`resolve_api_key` but also says which source won."""
    if explicit is not None and not isinstance(explicit, str):
        raise TypeError(f"api_key must be a str, got {type(explicit).__name__}")
    if explicit and explicit.strip():
        return ResolvedAPIKey(explicit.strip(), "explicit")
    env = os.environ if env is None else env
    codex = env.get("CODEX_API_KEY", "").strip()
    if codex:
        return ResolvedAPIKey(codex, "CODEX_API_KEY")
    from_file = _key_from_auth_json(auth_json_path(env))
    if from_file:
        return ResolvedAPIKey(from_file, "auth.json")
    openai = env.get("OPENAI_API_KEY", "").strip()
    if openai:
        return ResolvedAPIKey(openai, "OPENAI_API_KEY")
    return None


def resolve_api_key(explicit: str | None = None, *, env: Mapping[str, str] | None = None) -> str | None:
    """The API key to use, or ``None``. ``env`` defaults to ``os.environ`` (tests pass their own)."""
    resolved = resolve_api_key_with_source(explicit, env=env)
    if resolved is None:
        return None
    logger.debug("fastvoice: using API key %s from %s", redact(resolved.value), resolved.source)
    return resolved.value


def require_api_key(explicit: str | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The API key to use; raises :class:`MissingAPIKeyError` (before any connection is attempted) if none."""
    key = resolve_api_key(explicit, env=env)
    if key is None:
        raise MissingAPIKeyError(auth_json_path(env))
    return key
