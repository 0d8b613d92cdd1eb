"""The Voice pipeline, Audio and offline-server sections of docs/guide.md run as written, and print
what the guide says they print."""

from __future__ import annotations

import pathlib
import re

import pytest

pytest.importorskip("pocketsphinx", reason="the offline providers (fastvoice[local]) are not installed")
pytest.importorskip("espeakng_loader", reason="the offline providers (fastvoice[local]) are not installed")

GUIDE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guide.md"


def section(title: str) -> str:
    text = GUIDE.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_voice_audio_and_serve_sections_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks: list[str] = []
    for title in ("Voice pipeline", "Audio", "An offline Realtime server"):
        found = re.findall(r"```python\n(.*?)```", section(title), re.S)
        assert found, title
        blocks += found
    namespace: dict[str, object] = {"__name__": "guide"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{GUIDE.name}[block {i}]", "exec"), namespace)
        out = capsys.readouterr().out
        # Every "# ..." line at the end of a block is output the guide promises.
        promised = re.findall(r"^# (.+)$", block.split("\n\n")[-1], re.M)
        for line in promised:
            if "(" in line and line.endswith(")"):
                line = line[: line.index("  (")] if "  (" in line else line
            assert line.strip() in out, (i, line, out)
