"""Type stubs for the native core (`rust/`). Kept by hand: update with every Rust API change."""

__version__: str

class AudioFormatError(ValueError):
    """Audio data or parameters that fastvoice cannot interpret."""
