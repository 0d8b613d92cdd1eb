"""API key precedence, auth.json handling, and keys never leaking into reprs or logs."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
from fastvoice.realtime import auth

KEY_EXPLICIT = "sk-explicit-000000000000aaaa"
KEY_CODEX = "sk-codex-1111111111111bbbb"
KEY_FILE = "sk-proj-file-22222222222cccc"
KEY_ENV = "sk-env-3333333333333333dddd"


def write_auth(home: pathlib.Path, content: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "auth.json").write_text(content)


@pytest.fixture
def codex_home(tmp_path: pathlib.Path) -> pathlib.Path:
    home = tmp_path / "codex"
    write_auth(home, json.dumps({"OPENAI_API_KEY": KEY_FILE, "tokens": {"id_token": "not-a-key"}}))
    return home


def test_precedence_explicit_codex_file_env(codex_home: pathlib.Path) -> None:
    env = {"CODEX_API_KEY": KEY_CODEX, "CODEX_HOME": str(codex_home), "OPENAI_API_KEY": KEY_ENV}
    assert auth.resolve_api_key(KEY_EXPLICIT, env=env) == KEY_EXPLICIT
    assert auth.resolve_api_key(None, env=env) == KEY_CODEX
    env["CODEX_API_KEY"] = "   "  # blank counts as unset
    assert auth.resolve_api_key(None, env=env) == KEY_FILE
    r = auth.resolve_api_key_with_source(None, env=env)
    assert r is not None and r.source == "auth.json"
    (codex_home / "auth.json").unlink()
    assert auth.resolve_api_key(None, env=env) == KEY_ENV
    assert auth.resolve_api_key(None, env={"CODEX_HOME": str(codex_home)}) is None


def test_default_codex_home_is_dot_codex_under_home(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_auth(tmp_path / ".codex", json.dumps({"OPENAI_API_KEY": KEY_FILE}))
    assert auth.auth_json_path({}) == tmp_path / ".codex" / "auth.json"
    assert auth.resolve_api_key(None, env={"OPENAI_API_KEY": KEY_ENV}) == KEY_FILE
    # With no env mapping given, os.environ is used.
    monkeypatch.delenv("CODEX_API_KEY", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    assert auth.resolve_api_key() == KEY_FILE


@pytest.mark.parametrize(
    "content", ["{not json", "[1, 2]", json.dumps({"OPENAI_API_KEY": 5}), json.dumps({})]
)
def test_bad_auth_json_is_skipped_without_echoing_it(
    tmp_path: pathlib.Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_auth(tmp_path, content)
    caplog.set_level(logging.DEBUG, logger="fastvoice")
    assert auth.resolve_api_key(None, env={"CODEX_HOME": str(tmp_path), "OPENAI_API_KEY": KEY_ENV}) == KEY_ENV
    assert content not in caplog.text or content == "{}"


def test_missing_key_error_is_clear(tmp_path: pathlib.Path) -> None:
    with pytest.raises(auth.MissingAPIKeyError) as info:
        auth.require_api_key(None, env={"CODEX_HOME": str(tmp_path)})
    msg = str(info.value)
    for needle in ("api_key=", "CODEX_API_KEY", "auth.json", "OPENAI_API_KEY", str(tmp_path / "auth.json")):
        assert needle in msg
    assert auth.require_api_key(KEY_EXPLICIT, env={}) == KEY_EXPLICIT
    with pytest.raises(TypeError):
        auth.resolve_api_key(b"sk-bytes", env={})  # type: ignore[arg-type]


def test_redaction_and_reprs_never_show_the_key(
    codex_home: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert auth.redact(KEY_FILE) == "sk-proj-…cccc"
    assert auth.redact(KEY_ENV) == "sk-…dddd"
    assert auth.redact("short") == "***"
    assert auth.redact(None) == "<none>" and auth.redact("") == "<none>"
    caplog.set_level(logging.DEBUG, logger="fastvoice")
    resolved = auth.resolve_api_key_with_source(None, env={"CODEX_HOME": str(codex_home)})
    assert resolved is not None and resolved.value == KEY_FILE
    for text in (repr(resolved), str(resolved), f"{resolved}"):
        assert KEY_FILE not in text and "…cccc" in text
    auth.resolve_api_key(None, env={"CODEX_HOME": str(codex_home)})
    assert "sk-proj-…cccc" in caplog.text and KEY_FILE not in caplog.text
    with pytest.raises(auth.MissingAPIKeyError) as info:
        auth.require_api_key(None, env={"CODEX_HOME": str(codex_home / "nowhere")})
    assert KEY_FILE not in str(info.value)
