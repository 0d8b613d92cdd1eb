"""A fresh clone of the committed repository, with nothing beside it, collects the whole suite and runs
its data-dependent tests: the test data travels with the repository (tests/data), no test reads a path
outside it, and no collection error stops the run.

How the clone imports fastvoice: the clone has the Python sources of HEAD but no compiled extension (it
is built, never committed). The test copies the extension this run imports (`fastvoice._fastvoice`, built
by `scripts/test` from the same sources) into the clone's `python/fastvoice/` and puts only the clone's
`python/` on PYTHONPATH, so the clone's own Python code and tests run, not the main tree's (asserted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastvoice import _fastvoice

ROOT = Path(__file__).resolve().parents[1]
# Data-dependent tests run in the clone: the wire capture, the four recordings, and real speech.
DATA_TESTS = [
    "tests/test_realtime_protocol.py::test_first_frame_equals_openai_agents_capture",
    "tests/test_realtime_agent.py::test_handoff_tool_matches_capture",
    "tests/test_wav.py::test_committed_recordings",
    "tests/test_vad.py::test_each_other_recording_is_one_utterance",
    "tests/test_voice_local.py::test_stt_on_natural_speech",
]


def git(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run from a git checkout with git on PATH ({ROOT})")
        pytest.skip(f"{ROOT} is not a git checkout (or git is missing): nothing to clone")
    head = git("rev-parse", "HEAD").strip()
    base = tmp_path_factory.mktemp("fresh")
    target = base / "fastvoice"
    git("clone", "--quiet", "--no-checkout", str(ROOT), str(target), cwd=base)
    git("checkout", "--quiet", "--detach", head, cwd=target)
    assert sorted(p.name for p in base.iterdir()) == ["fastvoice"]  # no ../shared beside it
    assert not (target / "python/fastvoice" / Path(_fastvoice.__file__).name).exists()  # never committed
    shutil.copy2(_fastvoice.__file__, target / "python/fastvoice")
    return target


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(cwd / "python")  # this tree's sources only
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def collected(cwd: Path) -> set[str]:
    proc = run_pytest(cwd, "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "error" not in proc.stdout.lower().splitlines()[-1], proc.stdout[-3000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_fresh_clone_collects_every_test_of_the_tree(clone: Path) -> None:
    ours = collected(ROOT)
    theirs = collected(clone)
    # Test files changed since HEAD (while developing) are compared only if unchanged; in CI, none are.
    status = git("status", "--porcelain", "--", "tests", "benches")
    changed = {line[3:].strip() for line in status.splitlines()}
    committed = {node for node in ours if node.split("::")[0] not in changed}
    assert committed - theirs == set()
    assert len(theirs) >= len(committed) > 800  # the whole suite, not a stub of it


def test_fresh_clone_runs_its_data_dependent_tests(clone: Path) -> None:
    probe = "import fastvoice, sys; print(fastvoice.__file__)"
    env = {**os.environ, "PYTHONPATH": str(clone / "python")}
    where = subprocess.run([sys.executable, "-c", probe], cwd=clone, env=env, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(clone), where  # the clone's own sources
    report = clone.parent / "report.xml"
    proc = run_pytest(clone, "-q", "-rs", f"--junitxml={report}", *DATA_TESTS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": 10, "failures": 0, "errors": 0, "skipped": 0}, proc.stdout[-3000:]
