"""cgmsim fuzz --atheris: coverage-guided campaigns (libFuzzer). The fuzzer's bytes drive the
targets' own generators (``BytesRandom``); a planted bug is found, shrunk and saved as an
ordinary reproducer, which replays without atheris."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from sim.fuzz import engine
from sim.fuzz.coverage import BytesRandom
from sim.fuzz.targets import make_target
from tests.sim.test_fuzz import planted_decoder

ROOT = pathlib.Path(__file__).resolve().parents[2]
CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"


def test_the_bytes_are_the_only_source_of_the_draws():
    data = bytes(range(1, 200))
    episode = make_target("transmitter").generate(BytesRandom(data), 20)
    assert make_target("transmitter").generate(BytesRandom(data), 20) == episode
    other = make_target("transmitter").generate(BytesRandom(data[::-1]), 20)
    assert other != episode
    drained = BytesRandom(b"\x07")
    assert drained.getrandbits(8) == 7
    assert drained.getrandbits(16) == 0 and drained.random() == 0.0  # zeros once used up
    assert 0 <= BytesRandom(b"\xff" * 8).random() < 1


@pytest.mark.slow
def test_a_coverage_guided_campaign_finds_shrinks_and_saves_a_planted_bug(tmp_path):
    script = (
        "import pathlib\n"
        "from tests.sim.test_fuzz import planted_decoder\n"
        "from sim.fuzz import coverage\n"
        f"coverage.run(planted_decoder(), 200_000, 1, pathlib.Path({str(tmp_path)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0  # libFuzzer stops at the first failure
    assert "FoundFailure: crash:IndexError" in done.stdout + done.stderr
    (saved,) = tmp_path.glob("planted-decoder-*.json")
    entry = engine.load(saved)
    assert entry["failure"]["signature"].startswith("crash:IndexError")
    assert len(entry["actions"]) == 1  # shrunk to the one faulty frame
    assert engine.replay(planted_decoder(), entry) is not None  # still fails with the bug
    assert engine.replay(make_target("decoder"), entry) is None  # and not without it
    assert list(tmp_path.glob("crash-*")), "libFuzzer's own artefact, the raw bytes"


@pytest.mark.slow
def test_a_healthy_target_runs_its_iterations_and_exits_0(tmp_path):
    done = subprocess.run(
        [str(CGMSIM), "fuzz", "--target", "decoder", "--atheris", "--iterations", "500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Done 500 runs" in done.stderr
    bad = subprocess.run(
        [str(CGMSIM), "fuzz", "--target", "decoder", "--atheris", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "not --json" in bad.stderr
