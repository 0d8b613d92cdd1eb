"""The guide's "Errors" section documents every exception the public API exports, and its example runs."""

from __future__ import annotations

import importlib
import pathlib
import pkgutil
import re

import fastvoice
import pytest

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md"


def _errors_section() -> str:
    text = GUIDE.read_text()
    start = text.index("\n## Errors\n")
    return text[start : text.index("\n## ", start + 1)]


def _public_modules() -> list[str]:
    found = [
        m.name
        for m in pkgutil.walk_packages(fastvoice.__path__, "fastvoice.")
        if not any(part.startswith("_") for part in m.name.split(".")[1:])
    ]
    return ["fastvoice", *found]


def exported_exceptions() -> dict[str, list[str]]:
    """Exception class name -> the public modules whose `__all__` exports it."""
    out: dict[str, list[str]] = {}
    for name in _public_modules():
        module = importlib.import_module(name)  # an import error fails the test: nothing goes unchecked
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                out.setdefault(obj.__name__, []).append(name)
    return out


def test_every_exported_exception_is_documented() -> None:
    exported = exported_exceptions()
    # The well-known ones are found, so the scan itself works.
    for name in (
        "AudioFormatError",
        "TransportError",
        "ConnectError",
        "MessageTooBig",
        "VoiceError",
        "NoSpeechError",
    ):
        assert name in exported
    section = _errors_section()
    documented = set(re.findall(r"`(\w+)`", section))
    missing = {name: where for name, where in exported.items() if name not in documented}
    assert missing == {}, f"add these to the guide's Errors section: {missing}"
    assert len(exported) >= 20


def test_transport_error_subclasses_are_all_listed() -> None:
    from fastvoice import transport

    def subclasses(cls: type) -> set[type]:
        return {c for s in cls.__subclasses__() for c in {s, *subclasses(s)}}

    section = _errors_section()
    for cls in subclasses(transport.TransportError):
        if not cls.__module__.startswith("fastvoice.transport"):
            continue
        assert f"`{cls.__name__}`" in section, cls


def test_errors_section_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _errors_section(), re.S)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"guide Errors[{i}]", "exec"), {"__name__": "guide"})
        out = capsys.readouterr().out
        for line in re.findall(r"^# (.+)$", block, re.M):
            assert line in out, (i, line, out)
