"""A small docstring reader: the summary and the per-parameter descriptions, for tool schemas.

Handles the three styles people actually write — Google (``Args:``), Sphinx (``:param x:``) and NumPy
(``Parameters`` + dashes) — and nothing else (types in docstrings are ignored; the signature's hints win).
It is deliberately forgiving: anything it does not understand stays in the description, never raises.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_GOOGLE_PARAM_HEADERS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_GOOGLE_ANY_HEADER = re.compile(
    r"^(args|arguments|parameters|params|keyword args|keyword arguments|returns?|yields?|raises?|"
    r"examples?|notes?|attributes|see also|warnings?|todo|references)\s*:\s*$",
    re.IGNORECASE,
)
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]*?))?:\s*(.*)$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?::\s*(.*))?$")


@dataclass(frozen=True, slots=True)
class ParsedDocstring:
    description: str | None
    params: dict[str, str] = field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(lines: list[str]) -> str:
    """Join continuation lines into one paragraph-preserving string."""
    paragraphs: list[list[str]] = [[]]
    for ln in lines:
        if ln.strip():
            paragraphs[-1].append(ln.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _parse_google_items(lines: list[str], params: dict[str, str]) -> None:
    base = min((_indent(ln) for ln in lines if ln.strip()), default=0)
    name: str | None = None
    buf: list[str] = []
    for ln in lines:
        m = _GOOGLE_ITEM.match(ln.strip()) if ln.strip() and _indent(ln) == base else None
        if m:
            if name:
                params[name] = _join(buf)
            name, buf = m.group(1), [m.group(3)]
        elif name:
            buf.append(ln)
    if name:
        params[name] = _join(buf)


def _parse_numpy_items(lines: list[str], params: dict[str, str]) -> None:
    base = min((_indent(ln) for ln in lines if ln.strip()), default=0)
    name: str | None = None
    buf: list[str] = []
    for ln in lines:
        if ln.strip() and _indent(ln) == base:
            m = _NUMPY_ITEM.match(ln.strip())
            if name:
                params[name] = _join(buf)
            name, buf = (m.group(1), []) if m else (None, [])
            # "x, y : int" style lists are rare enough to ignore.
        elif name:
            buf.append(ln)
    if name:
        params[name] = _join(buf)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Split a docstring into its description (text before the first section) and parameter docs."""
    if not doc:
        return ParsedDocstring(None)
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    desc_lines: list[str] = []
    i, n = 0, len(lines)
    in_description = True
    while i < n:
        line = lines[i]
        stripped = line.strip()
        # NumPy section: a title line followed by dashes.
        if i + 1 < n and stripped and _NUMPY_UNDERLINE.match(lines[i + 1]):
            in_description = False
            title = stripped.lower()
            j = i + 2
            body: list[str] = []
            while j < n and not (j + 1 < n and lines[j].strip() and _NUMPY_UNDERLINE.match(lines[j + 1])):
                body.append(lines[j])
                j += 1
            if title in ("parameters", "other parameters", "keyword arguments"):
                _parse_numpy_items(body, params)
            i = j
            continue
        # Google section: "Args:" with an indented body.
        if _GOOGLE_ANY_HEADER.match(stripped) and _indent(line) == 0:
            in_description = False
            header = stripped[:-1].strip().lower()
            j = i + 1
            body = []
            while j < n and (not lines[j].strip() or _indent(lines[j]) > 0):
                body.append(lines[j])
                j += 1
            if header in _GOOGLE_PARAM_HEADERS:
                _parse_google_items(body, params)
            i = j
            continue
        # Sphinx field list.
        m = _SPHINX_FIELD.match(stripped)
        if m and _indent(line) == 0:
            in_description = False
            kind, arg, text = m.group(1), (m.group(2) or "").split(), m.group(3)
            j = i + 1
            buf = [text]
            while j < n and lines[j].strip() and _indent(lines[j]) > 0:
                buf.append(lines[j])
                j += 1
            if kind in ("param", "parameter", "arg", "argument", "key", "keyword") and arg:
                params[arg[-1]] = _join(buf)
            i = j
            continue
        if in_description:
            desc_lines.append(line)
        i += 1
    description = _join(desc_lines) or None
    return ParsedDocstring(description, params)
