"""``cgmsim simulate --display`` driven as a user does: a separate process on a pseudo-terminal,
its screen read back through a VT100 interpreter (tests/support/vt100.py), the acknowledge key
typed on its keyboard (issue 18: "the screen test reads value, arrow, phase countdown and an
alert, and acknowledges it").

Every expected value comes from the files the same run wrote (events.jsonl, readings.csv,
summary.json) and from shared/spec/behavior.md's rules: LOW/HIGH outside 40-400 mg/dL, no
glucose during warm-up, the countdowns of the session's phases.
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import json
import math
import os
import pathlib
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.support.vt100 import Terminal

pytestmark = pytest.mark.slow  # a separate process on a pseudo-terminal, paced in real time

CGMSIM = pathlib.Path(sys.executable).parent / "cgmsim"
COLS, ROWS = 100, 32
DAYS = 0.1  # 144 min: warm-up, rising readings, HIGH from about 100 min
SPEED = 4800  # 144 min in 1.8 s; a frame every 8 session minutes
CLOCK = re.compile(r"clock (\d+) d (\d\d):(\d\d):(\d\d)")
VALUE = re.compile(r"^  (\d+) mg/dL|^  (LOW|HIGH)")
ARROW = re.compile(r" . (DoubleUp|SingleUp|FortyFiveUp|Flat|FortyFiveDown|SingleDown|DoubleDown) ")
LEFT = re.compile(r"(warm-up|sensor|grace period): (?:(\d+) d )?(?:(\d+) h )?(\d+) min left")


def rising_trace(path: pathlib.Path) -> pathlib.Path:
    """260 mg/dL rising 1.5 mg/dL/min, then 420 (above the display range) from minute 100."""
    rows = "".join(f"{m},{260 + 1.5 * m if m < 100 else 420}\n" for m in range(0, 300, 5))
    path.write_text("time_offset_min,glucose_mgdl\n" + rows)
    return path


def run_on_a_terminal(args: list[str], timeout_s: float = 90.0) -> tuple[int, Terminal, float]:
    """Run ``cgmsim ARGS`` on a pseudo-terminal of COLS x ROWS; type ``a`` once the screen
    shows an unacknowledged alert. Returns the exit code, the terminal (its frames) and the
    session time (ms) of the frame on which the key was typed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [str(CGMSIM), *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    terminal = Terminal(COLS, ROWS)
    decoder = codecs.getincrementaldecoder("utf-8")()  # a character may span two reads
    typed_at: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process has gone and closed the terminal
                break
            if not data:
                break
            seen = len(terminal.frames)
            terminal.feed(decoder.decode(data))
            for frame in terminal.frames[seen:]:
                if typed_at is None and any(line.startswith("  ! ") for line in frame):
                    os.write(master, b"a")
                    typed_at = clock_ms(frame)
        code = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert typed_at is not None, "no alert was ever shown"
    return code, terminal, typed_at


def clock_ms(frame: list[str]) -> int:
    match = CLOCK.search(frame[0])
    assert match, frame[0]
    d, h, m, s = (int(g) for g in match.groups())
    return (((d * 24 + h) * 60 + m) * 60 + s) * 1000


def minutes_left(frame: list[str]) -> tuple[str, int] | None:
    match = LEFT.search(frame[2])
    if match is None:
        return None
    d, h, m = (int(g or 0) for g in match.groups()[1:])
    return match.group(1), (d * 24 + h) * 60 + m


def ceil_min(ms: float) -> int:
    return math.ceil(round(ms) / 60_000)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screen")
    trace = rising_trace(folder / "rising.csv")
    out = folder / "out"
    args = ["simulate", "--display", "--speed", str(SPEED), "--days", str(DAYS)]
    args += ["--trace", str(trace), "--ideal-sensor", "--no-plot", "--out", str(out)]
    code, terminal, typed_at = run_on_a_terminal(args)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    with (out / "readings.csv").open() as f:
        readings = {int(r["time_offset_min"]): r for r in csv.DictReader(f)}
    summary = json.loads((out / "summary.json").read_text())
    return code, terminal.frames, typed_at, events, readings, summary


def test_the_run_ends_well_and_draws_frames_through_the_session(run):
    code, frames, _, _, _, _ = run
    assert code == 0
    times = [clock_ms(f) for f in frames]
    assert times == sorted(times)
    assert times[0] == 0 and times[-1] == DAYS * 1440 * 60_000
    assert all(len(f) == ROWS for f in frames)


def test_warm_up_shows_no_glucose_and_counts_down_to_its_end(run):
    _, frames, _, _, _, summary = run
    end_ms = summary["session"]["warmup_end_min"] * 60_000
    warming = [f for f in frames if 0 < clock_ms(f) < end_ms]
    assert len(warming) >= 3
    for frame in warming:
        assert frame[2].startswith("  Warm-up")
        assert minutes_left(frame) == ("warm-up", ceil_min(end_ms - clock_ms(frame)))


def test_each_frame_shows_the_newest_reading_with_its_arrow_and_the_time_to_expiry(run):
    _, frames, _, events, readings, summary = run
    expiry_ms = summary["session"]["expiry_min"] * 60_000
    shown = [f for f in frames if VALUE.match(f[2])]
    assert len(shown) >= 10
    for frame in shown:
        now = clock_ms(frame)
        arrived = [e for e in events if e["kind"] == "reading" and e["t_min"] * 60_000 <= now]
        newest = max(arrived, key=lambda e: e["time_offset_min"])
        value = VALUE.match(frame[2])
        assert (value.group(1) or value.group(2)) == newest["text"]
        assert readings[newest["time_offset_min"]]["displayed"] == newest["text"]
        arrow = ARROW.search(frame[2])
        assert (arrow.group(1) if arrow else "NOT COMPUTABLE") == newest["arrow"]
        assert minutes_left(frame) == ("sensor", ceil_min(expiry_ms - now))
    # behavior.md: above 400 mg/dL the receiver shows HIGH (the trace goes to 420)
    assert any(VALUE.match(f[2]).group(2) == "HIGH" for f in shown)
    assert any(ARROW.search(f[2]) and "Flat" not in f[2] for f in shown)  # rising: not flat


def test_the_alert_is_shown_then_acknowledged_with_the_key(run):
    _, frames, typed_at, events, _, summary = run
    raised = [e for e in events if e["kind"] == "alert_raised" and e["alert"] == "high"]
    assert raised, "the trace is above 250 mg/dL: high must be raised"
    first_shown = next(f for f in frames if any(line.startswith("  ! high") for line in f))
    assert raised[0]["t_min"] * 60_000 <= clock_ms(first_shown)
    assert any(line.endswith(raised[0]["reason"]) for line in first_shown)
    acknowledged = [e for e in events if e["kind"] == "alert_acknowledged"]
    assert [e["alert"] for e in acknowledged] == ["high"]
    ack_ms = acknowledged[0]["t_min"] * 60_000
    assert ack_ms >= typed_at
    # drawn again at once on the press, then on every frame after it
    after = [f for f in frames if clock_ms(f) > ack_ms]
    after.insert(0, [f for f in frames if clock_ms(f) == ack_ms][-1])
    assert all(any("  high (acknowledged)" in line for line in f) for f in after)
    before = [f for f in frames if clock_ms(f) < ack_ms and clock_ms(f) >= clock_ms(first_shown)]
    assert before and all(any(line.startswith("  ! high") for line in f) for f in before)
    # summary.json says the run was watched, and that a key shaped it
    assert summary["settings"]["display"] == {"speed": SPEED, "keyboard_acknowledgements": 1}


def test_the_link_is_connected_and_bonded_over_ble(run):
    _, frames, _, _, _, _ = run
    assert frames[-1][1] == "link: connected · ble · bonded"


def test_ctrl_c_ends_the_run_and_gives_the_terminal_back_as_it_was(tmp_path):
    """Ctrl-C (the terminal's interrupt character) mid-run: exit 130 (cli.md's contract for an
    interrupted command), the terminal's modes restored (echo, line editing), the cursor shown."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    modes = termios.tcgetattr(slave)
    args = ["simulate", "--display", "--speed", "600", "--days", "1", "--link", "memory"]
    process = subprocess.Popen(
        [str(CGMSIM), *args, "--out", str(tmp_path)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "LC_ALL": "C.UTF-8", "TERM": "xterm-256color"},
        preexec_fn=take_the_terminal,  # so that Ctrl-C on it interrupts the process
    )
    output, interrupted = b"", False
    deadline = time.monotonic() + 60
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                output += os.read(master, 65536)  # keep reading: a full terminal blocks it
            if not interrupted and b"\x1b[?2026l" in output:  # a first frame drawn
                assert termios.tcgetattr(slave)[3] & termios.ECHO == 0  # the screen's cbreak
                os.write(master, b"\x03")
                interrupted = True
        while select.select([master], [], [], 0.2)[0]:
            output += os.read(master, 65536)
        assert interrupted and process.wait(timeout=1) == 130
        assert termios.tcgetattr(slave) == modes
        assert output.rfind(b"\x1b[?25h") > output.rfind(b"\x1b[?2026l")  # cursor shown last
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
        os.close(slave)


def take_the_terminal() -> None:
    """In the child: a new session whose controlling terminal is its standard input."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
