"""The test data committed in tests/data (see its README): one place that knows where it lives.

`pyproject.toml` puts tests/ on pytest's `pythonpath`, so tests and benches import this as `_data`.
The data ships with the repository, so a missing file is an error, never a reason to skip.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
# The four speech recordings, by name (tests parametrise over them).
AUDIO = ("lights_48k_stereo_f32.wav", "two_turns_16k.wav", "voice_sample_24k.wav", "weather_22k.wav")
WIRE_CAPTURE = "realtime_wire_capture.txt"


def data_path(name: str) -> Path:
    """The path of `name` in tests/data; FileNotFoundError (not a skip) if it is not there."""
    path = DATA / name
    if not path.is_file():
        raise FileNotFoundError(
            f"test data {path} is missing: it is committed in tests/data (see its README)"
        )
    return path
