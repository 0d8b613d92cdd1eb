"""Hosted tools for `AgentWorkflow`: Responses API tool dicts that OpenAI runs itself.

They are passed to `/responses` unchanged. Checked here only as far as a mistake would
otherwise surface as an HTTP 400 in the middle of a conversation: a known `type`, the fields
that type requires, and their basic types. Tools whose calls the client must execute
(`local_shell`, `shell`, `computer_use_preview`, `custom`, `apply_patch`, a `function` dict)
are refused: the workflow could not answer their calls.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: The hosted tool types and, per type, the required fields with their accepted Python types.
HOSTED_TOOLS: dict[str, dict[str, tuple[type, ...]]] = {
    "file_search": {"vector_store_ids": (list, tuple)},
    "web_search": {},
    "web_search_2025_08_26": {},
    "web_search_preview": {},
    "web_search_preview_2025_03_11": {},
    "code_interpreter": {"container": (str, dict)},
    "mcp": {"server_label": (str,)},
    "image_generation": {},
}

_CLIENT_SIDE = (
    "function",
    "custom",
    "local_shell",
    "shell",
    "computer",
    "computer_use_preview",
    "apply_patch",
)


def hosted_tool(tool: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A copy of `tool` after the checks above; `ValueError` naming tool `index` otherwise."""
    where = f"AgentWorkflow tool {index}"
    kind = tool.get("type")
    if not isinstance(kind, str):
        raise ValueError(
            f"{where}: a hosted tool dict needs a string 'type' (e.g. 'file_search'), got {kind!r}"
        )
    if kind in _CLIENT_SIDE:
        hint = " (pass a function_tool or a plain function instead)" if kind == "function" else ""
        raise ValueError(
            f"{where}: {kind!r} tools are run by the client, which AgentWorkflow cannot do{hint}"
        )
    required = HOSTED_TOOLS.get(kind)
    if required is None:
        raise ValueError(f"{where}: unknown hosted tool type {kind!r}; known: {', '.join(HOSTED_TOOLS)}")
    for name, types in required.items():
        if name not in tool:
            raise ValueError(f"{where}: a {kind!r} tool needs {name!r}")
        if not isinstance(tool[name], types):
            wanted = " or ".join(t.__name__ for t in types)
            raise ValueError(f"{where}: {kind}.{name} must be a {wanted}, got {type(tool[name]).__name__}")
    if kind == "file_search":
        ids = tool["vector_store_ids"]
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValueError(f"{where}: file_search.vector_store_ids must be a non-empty list of ids")
    if kind == "mcp" and not (
        isinstance(tool.get("server_url"), str) or isinstance(tool.get("connector_id"), str)
    ):
        raise ValueError(f"{where}: an 'mcp' tool needs 'server_url' or 'connector_id'")
    return copy.deepcopy(dict(tool))
