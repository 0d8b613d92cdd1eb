"""`import fastvoice` is cheap and every subpackage is reachable as an attribute, imported on first use."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

SUBPACKAGES = ("realtime", "voice", "audio", "transport", "telemetry", "testing", "serve", "telephony", "web")


def _run(code: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return dict(json.loads(out.stdout))


def test_import_fastvoice_loads_no_subpackage() -> None:
    got = _run(
        "import json, sys, fastvoice\n"
        f"print(json.dumps({{n: 'fastvoice.' + n in sys.modules for n in {SUBPACKAGES!r}}}"
        " | {'asyncio': 'asyncio' in sys.modules}))"
    )
    assert got == {**dict.fromkeys(SUBPACKAGES, False), "asyncio": False}


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_is_an_attribute_imported_on_access(name: str) -> None:
    got = _run(
        "import json, sys, fastvoice\n"
        f"mod = fastvoice.{name}\n"
        f"print(json.dumps({{'name': mod.__name__, 'loaded': 'fastvoice.{name}' in sys.modules,"
        f" 'listed': '{name}' in dir(fastvoice), 'same': mod is sys.modules['fastvoice.{name}']}}))"
    )
    assert got == {"name": f"fastvoice.{name}", "loaded": True, "listed": True, "same": True}


def test_attribute_access_in_process_and_unknown_names() -> None:
    import fastvoice

    for name in SUBPACKAGES:
        assert isinstance(getattr(fastvoice, name), types.ModuleType)
    assert fastvoice.realtime.Session.__name__ == "Session"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fastvoice.nope  # type: ignore[attr-defined]
    assert not hasattr(fastvoice, "_fastvoice_missing")
