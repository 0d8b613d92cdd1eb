"""The Realtime section of docs/guide.md runs: every python block, in order, in one namespace."""

from __future__ import annotations

import pathlib
import re

import pytest
from fastvoice import telemetry

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md"


def realtime_blocks() -> list[str]:
    text = GUIDE.read_text()
    start = text.index("\n## Realtime")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_guide_realtime_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = realtime_blocks()
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"__name__": "guide"}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{GUIDE.name}[realtime block {i}]", "exec"), namespace)
    finally:
        for h in telemetry.list_handlers():
            telemetry.detach(h.id)
    out = capsys.readouterr().out
    # The outputs the guide shows in comments are what the code prints.
    assert '{"restaurant":"Chez Nous","people":2}' in out
    assert '{"type": "semantic_vad", "eagerness": "medium"}' in out
    assert "['transfer_to_tech_support', 'transfer_to_sales']" in out
    assert "sk-proj-…1234" in out
    assert "voice must be one of" in out
    assert "run get_weather for call_1 with {'location': 'Oslo'}" in out
