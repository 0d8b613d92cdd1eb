"""fastvoice: voice agents on the OpenAI Realtime API and voice pipelines, with a Rust core."""

from fastvoice import audio, transport
from fastvoice._fastvoice import AudioFormatError, __version__

__all__ = ["AudioFormatError", "__version__", "audio", "transport"]
