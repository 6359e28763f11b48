"""The live receiver screen in process (sim.screen): a simulated session on the memory link
paced by ``PacedSession`` on a stand-in wall clock, drawn by ``Screen`` into the VT100
interpreter of tests/support/vt100.py, with the acknowledge key typed by a stand-in keyboard.
The separate process on a pseudo-terminal is tests/sim/test_screen_pty.py.

Expected values: the run's own events; shared/spec/behavior.md (Urgent Low at <= 55 mg/dL and
Low at <= 70 both sound; Urgent Low sounds again 30 min after an acknowledgement while glucose
stays <= 55, after the Dexcom G5 guide).
"""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner

from firmware.profiles import MINUTE_MS
from sim import simulation
from sim.cli import cli
from sim.screen import LinkState, Screen, View
from sim.screen.paced import FRAME_S, PacedSession
from sim.screen.view import clock
from sim.session.config import SimulationConfig
from sim.session.engine import Engine
from sim.signal.traces import load_trace
from tests.support.vt100 import Terminal

COLS, ROWS = 80, 24  # what Screen assumes of a stream that is no terminal
SPEED = 3000.0
DAYS = 0.2  # 288 min
LOW_FROM = 150  # the trace: 120 mg/dL, then 50 from minute 150 on


class TerminalStream:
    """A text stream into the VT100 interpreter (no file descriptor: Screen takes 80 x 24)."""

    def __init__(self) -> None:
        self.terminal = Terminal(COLS, ROWS)

    def write(self, text: str) -> int:
        self.terminal.feed(text)
        return len(text)

    def flush(self) -> None:
        pass


class Wall:
    """A stand-in for the wall clock that moves only when the screen waits."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now_s


class Keyboard:
    """A stand-in for the terminal's keys: types ``a`` twice once an alert is on the screen."""

    def __init__(self, wall: Wall, stream: TerminalStream) -> None:
        self.wall, self.stream = wall, stream
        self.typed_at_frame: int | None = None

    def wait(self, seconds: float) -> bool:
        self.wall.waits.append(seconds)
        self.wall.now_s += seconds
        return False

    def read(self) -> str:
        frames = self.stream.terminal.frames
        if (
            self.typed_at_frame is None
            and frames
            and any(line.startswith("  ! ") for line in frames[-1])
        ):
            self.typed_at_frame = len(frames) - 1
            return "aa"
        return ""


def clock_s(frame: list[str]) -> int:
    days, hms = frame[0].split("clock ")[1].split(" d ")
    h, m, s = (int(x) for x in hms.split(":"))
    return ((int(days) * 24 + h) * 60 + m) * 60 + s


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("screen") / "hypo.csv"
    rows = "".join(f"{m},{120 if m < LOW_FROM else 50}\n" for m in range(0, 600, 5))
    path.write_text("time_offset_min,glucose_mgdl\n" + rows)
    config = SimulationConfig(days=DAYS, source=load_trace(path), ideal_sensor=True)
    stream, wall = TerminalStream(), Wall()
    keyboard = Keyboard(wall, stream)
    screen = Screen(stream, keyboard, "cgmsim g7")  # type: ignore[arg-type]
    paced = PacedSession(screen, SPEED, "memory", wall=wall)
    engines: list[Engine] = []

    def watch(engine: Engine) -> None:
        engines.append(engine)
        paced.attach(engine)

    result = simulation.run(config, link="memory", watch=watch)
    paced.finish()
    screen.close()
    return result, stream.terminal.frames, keyboard, wall, engines[0]


def test_the_run_is_paced_to_its_speed(session):
    result, frames, _, wall, _ = session
    # a frame every SPEED x 0.1 s of session time, 0.1 s of wall time each; the last, at the
    # session's end, drawn once the run is over
    assert wall.waits and all(w == pytest.approx(FRAME_S) for w in wall.waits)
    end_s = result.end_min * 60  # 17,280 s: not a whole number of frames (300 s each)
    last_paced_s = max(clock_s(f) for f in frames if clock_s(f) < end_s)
    assert sum(wall.waits) == pytest.approx(last_paced_s / SPEED)
    assert clock_s(frames[-1]) == end_s


def test_the_key_acknowledges_the_most_urgent_alerts_in_the_receiver_core(session):
    result, frames, keyboard, _, _ = session
    shown = frames[keyboard.typed_at_frame]
    assert any(line.startswith("  ! urgent_low: glucose 50 mg/dL <= 55") for line in shown)
    assert any(line.startswith("  ! low: glucose 50 mg/dL <= 70") for line in shown)
    acks = [e for e in result.events if e["kind"] == "alert_acknowledged"]
    assert [e["alert"] for e in acks] == ["urgent_low", "low"]  # two presses, most urgent first
    ack_min = acks[0]["t_min"]
    assert acks[1]["t_min"] == ack_min
    # the core took them: Urgent Low sounds again 30 min after its acknowledgement
    repeats = [
        e["t_min"]
        for e in result.events
        if e["kind"] == "alert_repeated" and e["alert"] == "urgent_low"
    ]
    assert next(t for t in repeats if t > ack_min) == pytest.approx(ack_min + 30)
    # and the screen says so on the next frame
    after = frames[keyboard.typed_at_frame + 1]
    assert "    urgent_low (acknowledged): glucose 50 mg/dL <= 55" in after
    assert "    low (acknowledged): glucose 50 mg/dL <= 70" in after


def test_the_last_frame_shows_the_last_reading_the_low_graph_and_the_link(session):
    result, frames, _, _, _ = session
    last = frames[-1]
    assert last[0].endswith("clock 0 d 04:48:00")  # DAYS of session time
    assert last[1] == "link: connected · memory"  # the memory link has no pairing
    newest = max(
        (e for e in result.events if e["kind"] == "reading"), key=lambda e: e["time_offset_min"]
    )
    assert last[2].startswith(f"  {newest['text']} mg/dL")
    assert newest["text"] == "50"
    graph = [line for line in last if "┤" in line]
    labels = {line.split("┤")[0].strip(): i for i, line in enumerate(graph) if line[:4].strip()}
    marks = {i for i, line in enumerate(graph) if "*" in line}
    in_graph = [e for e in result.events if e["kind"] == "reading"]
    in_graph = [e for e in in_graph if e["time_offset_min"] > result.end_min - 180]
    assert sum(line.count("*") for line in graph) == len(in_graph)  # one column per reading
    below_band = {i for i in marks if i > labels["70"]}
    in_band = {i for i in marks if labels["180"] <= i <= labels["70"]}
    assert below_band and in_band and below_band | in_band == marks  # 50s, and 120s before


def test_a_small_terminal_keeps_the_value_and_the_alerts_and_drops_the_graph(session):
    _, _, _, _, engine = session
    receiver = engine.link.receiver
    view = View("cgmsim g7")
    view.add(engine.books.recorder.events)
    lines = view.render(int(DAYS * 1440 * MINUTE_MS), receiver, LinkState("memory", True), 40, 8)
    assert len(lines) <= 8 and all(len(line) <= 40 for line in lines)
    assert lines[2].startswith("  50 mg/dL")
    assert not any("┤" in line for line in lines)
    assert any("urgent_low" in line for line in lines)


def test_display_needs_a_terminal_and_speed_needs_display(tmp_path: pathlib.Path):
    runner = CliRunner()
    for args, message in (
        (["--display"], "cgmsim: error: --display needs a terminal: standard output is not one"),
        (["--speed", "60"], "cgmsim: error: --speed goes with --display"),
    ):
        result = runner.invoke(cli, ["simulate", *args, "--days", "0.1", "--out", str(tmp_path)])
        assert result.exit_code == 2
        assert result.output.strip().splitlines()[0].startswith(message)
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "summary.json").exists()


def test_the_vt100_interpreter_wraps_scrolls_and_erases_as_a_terminal_does():
    t = Terminal(10, 3)
    t.feed("\x1b[2J\x1b[Habcdef\x1b[1;4H\x1b[K\x1b[2;1Hxy\x1b[31mz\x1b[0m\x1b[?2026l")
    assert t.frames[-1] == ["abc", "xyz", ""]
    t.feed("\x1b[3;1H0123456789AB\x1b[?2026l")  # wraps at the margin, scrolls at the bottom
    assert t.frames[-1] == ["xyz", "0123456789", "AB"]
    t.feed("\x1b[2;5H\x1b[1K\x1b[3;1H\x1b[J\x1b[?2026l")
    assert t.frames[-1] == ["xyz", "     56789", ""]


def test_a_whole_session_counts_down_to_expiry_then_grace_then_says_replace_sensor():
    """G7 (behavior.md): 10 days, then a 12 h grace period, then replace the sensor. A frame
    every 10 h of session time (speed 360,000), so frames fall on the expiry itself."""
    stream, wall = TerminalStream(), Wall()
    screen = Screen(stream, Keyboard(wall, stream), "cgmsim g7")  # type: ignore[arg-type]
    paced = PacedSession(screen, 360_000.0, "memory", wall=wall)
    result = simulation.run(SimulationConfig(), link="memory", watch=paced.attach)
    paced.finish()
    by_clock = {f[0].split("clock ")[1]: f for f in stream.terminal.frames}
    assert by_clock["9 d 14:00:00"][2].endswith("sensor: 10 h 0 min left")
    assert by_clock["10 d 00:00:00"][2].endswith("grace period: 12 h 0 min left")
    assert by_clock["10 d 10:00:00"][2].endswith("grace period: 2 h 0 min left")
    assert any(
        line.startswith("  ! grace_period: grace period ends in 2 h")
        for line in by_clock["10 d 10:00:00"]
    )
    last = stream.terminal.frames[-1]
    assert last[0].endswith(f"clock {clock(int(result.end_min * 60_000))}")
    assert last[2].startswith("  Replace sensor") and last[2].endswith("session ended")
    assert any(line.startswith("  ! replace_sensor: replace sensor now") for line in last)


def test_a_new_sensor_session_starts_the_graph_again(session):
    _, _, _, _, engine = session
    view = View()
    view.add(engine.books.recorder.events)
    assert view.newest() is not None
    view.add([{"t_min": 300.0, "kind": "phase", "phase": "warmup"}])
    assert view.newest() is None
