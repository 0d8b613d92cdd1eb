"""The wheel users get (built by `scripts/wheel`), installed into a fresh venv from PyPI with no Rust
toolchain on PATH, runs `fastvoice demo`: the extension, the bundled sample and the offline providers
all come from wheels, nothing is compiled on the user's machine.

`scripts/test` builds the wheel and sets FASTVOICE_WHEEL; without it this test skips (with its reason),
except under CI=true, where a missing wheel is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

RUST_TOOLS = ("cargo", "rustc", "rustup")


@pytest.fixture(scope="module")
def wheel() -> Path:
    value = os.environ.get("FASTVOICE_WHEEL")
    if not value:
        reason = "FASTVOICE_WHEEL is not set (scripts/test builds the wheel with scripts/wheel and sets it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    path = Path(value).resolve()
    assert path.is_file(), f"FASTVOICE_WHEEL={value} is not a file"
    return path


def no_rust_path() -> str:
    """PATH without any directory that holds a Rust tool."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    kept = [d for d in dirs if d and not any(shutil.which(t, path=d) for t in RUST_TOOLS)]
    return os.pathsep.join(kept)


def test_wheel_is_abi3_manylinux2014_and_carries_extension_and_sample(wheel: Path) -> None:
    tags = wheel.name.removesuffix(".whl").split("-")[-3:]
    assert tags[:2] == ["cp311", "abi3"], wheel.name
    assert "manylinux2014_x86_64" in tags[2] or "manylinux_2_17_x86_64" in tags[2], wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "fastvoice/_fastvoice.abi3.so" in names
    assert "fastvoice/data/sample.wav" in names
    assert "fastvoice/data/silero_vad.onnx" in names  # the turn detector's model
    assert "fastvoice/data/SILERO_VAD_LICENSE.txt" in names
    assert not any(n.startswith("tests/") for n in names)  # test data stays in the repository


def test_wheel_installs_without_rust_and_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    path = os.pathsep.join([str(venv / "bin"), no_rust_path()])
    assert all(shutil.which(t, path=path) is None for t in RUST_TOOLS), path
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "CARGO_HOME", "RUSTUP_HOME"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PYTEST_")}
    env["PATH"] = path

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        cmd = [str(venv / "bin" / args[0]), *args[1:]]
        return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    # Binary wheels only, like a user on a machine without compilers: nothing may be built from source.
    pip = ("python", "-m", "pip", "install", "--quiet", "--only-binary=:all:")
    install = run(*pip, f"{wheel}[local]", timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    where = run("python", "-c", "import fastvoice; print(fastvoice.__file__)", timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(venv), where  # the installed wheel, not a source tree
    demo = run("fastvoice", "demo", timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = dict(line.split(None, 1) for line in demo.stdout.splitlines() if line.strip())
    assert lines["transcript"].startswith('"What is the weather like today?"'), demo.stdout
    assert lines["reply"].startswith('"You said: What is the weather like today?"'), demo.stdout
    assert (tmp_path / "out.wav").stat().st_size > 24000 * 2  # over a second of spoken reply
