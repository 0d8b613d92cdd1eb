"""fastvoice: voice agents on the OpenAI Realtime API and voice pipelines, with a Rust core.

The subpackages (``fastvoice.realtime``, ``voice``, ``audio``, ``transport``, ``telemetry``, ``testing``,
``serve``) are attributes of the package, imported on first access: ``import fastvoice`` loads only the
native core.
"""

from __future__ import annotations

import importlib

from fastvoice._fastvoice import AudioFormatError, __version__

# Not `from typing import TYPE_CHECKING`: importing typing would cost more than the rest of this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from fastvoice import audio as audio
    from fastvoice import realtime as realtime
    from fastvoice import serve as serve
    from fastvoice import telemetry as telemetry
    from fastvoice import telephony as telephony
    from fastvoice import testing as testing
    from fastvoice import transport as transport
    from fastvoice import voice as voice

_SUBMODULES = ("audio", "realtime", "serve", "telemetry", "telephony", "testing", "transport", "voice", "web")

__all__ = ["AudioFormatError", "__version__", "audio", "transport"]


def __getattr__(name: str) -> ModuleType:
    # Only reached for names not yet set: importing a submodule binds it on the package.
    if name in _SUBMODULES:
        return importlib.import_module(f"fastvoice.{name}")
    raise AttributeError(f"module 'fastvoice' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
