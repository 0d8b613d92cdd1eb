"""The package and its native core load, are versioned and typed."""

import pathlib
import tomllib

import fastvoice
from fastvoice import _fastvoice

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_version_matches_crate() -> None:
    cargo = tomllib.loads((ROOT / "rust" / "Cargo.toml").read_text())
    assert fastvoice.__version__ == cargo["package"]["version"] == _fastvoice.__version__


def test_audio_format_error_is_value_error() -> None:
    assert issubclass(fastvoice.AudioFormatError, ValueError)
    assert fastvoice.AudioFormatError is fastvoice.audio.AudioFormatError


def test_package_is_typed() -> None:
    pkg = pathlib.Path(fastvoice.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_fastvoice.pyi").exists()
