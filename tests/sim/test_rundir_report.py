"""``cgmsim report`` and session.png on a crafted run directory whose numbers are worked out by
hand (tests/sim/rundir_craft.py), and bad run directories (exit 2, one line)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from sim.rundir.commands import report_command
from sim.rundir.files import DEFAULT_CLOCK_AT_ZERO, load_run
from sim.rundir.glycemia import summarise
from sim.rundir.plots import report_figure, session_figure
from sim.session.config import SimulationConfig
from tests.sim.rundir_craft import ALERTS, BACKFILLED_AT, DISPLAYED, write_run

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Rows of the report's tables keyed by data-band / data-alert, and the embedded images."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.images: list[str] = []
        self.external: list[str] = []
        self._row: dict[str, str] | None = None
        self._key: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and ("data-band" in attrs or "data-alert" in attrs):
            self._row = self.rows.setdefault(attrs.get("data-band") or attrs["data-alert"], {})
        if tag == "td" and self._row is not None and "data-key" in attrs:
            self._key = attrs["data-key"]
        if tag == "img":
            self.images.append(attrs["src"])
        if tag in ("script", "link") or (tag == "img" and not attrs["src"].startswith("data:")):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "td":
            self._key = None

    def handle_data(self, data):
        if self._row is not None and self._key is not None:
            self._row[self._key] = data


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("crafted"))


@pytest.fixture(scope="module")
def reported(crafted):
    result = CliRunner().invoke(report_command, [str(crafted), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), (crafted / "report.html").read_text()


def test_time_in_ranges_by_hand(reported):
    numbers, _ = reported
    percent = {row["band"]: row["percent"] for row in numbers["time_in_ranges"]}
    assert percent == pytest.approx(
        {"very_low": 5.0, "low": 10.0, "in_range": 60.0, "high": 20.0, "very_high": 5.0}
    )
    # Battelino 2019 targets: <54 <1 %, <70 <4 %, 70-180 >70 %, >180 <25 %, >250 <5 %
    met = {row["band"]: row["met"] for row in numbers["time_in_ranges"]}
    assert met == dict.fromkeys(percent, False)


def test_mean_gmi_cv_and_active_by_hand(reported):
    numbers, _ = reported
    values = [{"LOW": 40, "HIGH": 400}.get(text) or int(text) for text in DISPLAYED]
    mean = sum(values) / len(values)
    assert mean == 128
    glucose = numbers["glucose"]
    assert glucose["mean_mgdl"] == pytest.approx(128.0)
    assert glucose["gmi_percent"] == pytest.approx(3.31 + 0.02392 * 128)
    sd = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    assert glucose["cv_percent"] == pytest.approx(100 * sd / mean)
    readings = numbers["readings"]
    assert (readings["displayed"], readings["expected"]) == (20, 22)
    assert readings["active_percent"] == pytest.approx(100 * 20 / 22)
    assert (readings["backfilled"], readings["lost"], readings["no_reading"]) == (3, 1, 1)


def test_accuracy_by_hand(reported):
    numbers, _ = reported
    values = [{"LOW": 40, "HIGH": 400}.get(text) or int(text) for text in DISPLAYED]
    # the crafted reference is the sensor value + 10 mg/dL; only references in the measuring
    # range (40-400 mg/dL) pair, so the HIGH reading (reference 410) is left out
    paired = [v for v in values if 40 <= v + 10 <= 400]
    assert len(paired) == len(values) - 1
    mard = 100 * sum(10 / (v + 10) for v in paired) / len(paired)
    assert numbers["accuracy"]["mard"] == pytest.approx(mard)
    assert numbers["accuracy"]["bias_mgdl"] == pytest.approx(-10.0)
    assert numbers["accuracy"]["pairs"] == len(paired)


def test_html_tables_hold_the_numbers_and_the_alerts(reported):
    numbers, text = reported
    page = parse(text)
    assert page.rows["in_range"]["percent"] == "60.0"
    assert page.rows["very_low"]["percent"] == "5.0"
    raised = {}
    for _, name in ALERTS:
        raised[name] = raised.get(name, 0) + 1
    listed = {name: int(page.rows[name]["raised"]) for name in raised}
    assert listed == raised == {"low": 2, "high": 1, "signal_loss": 1}
    assert page.rows["low"]["repeated"] == "1"
    assert numbers["alerts"][0]["alert"] == "low"  # cli.md order: low before high


def test_html_is_self_contained(reported, crafted):
    _, text = reported
    page = parse(text)
    assert page.external == []
    assert "http://" not in text and "https://" not in text
    (image,) = page.images  # the crafted run has no session.png to embed
    png = base64.b64decode(image.removeprefix("data:image/png;base64,"))
    assert png == (crafted / "report.png").read_bytes()
    assert png.startswith(PNG)


def test_report_figure_draws_the_agp_and_the_tir_bar(crafted):
    run = load_run(crafted)
    fig = report_figure(run, summarise(run))
    ax, bar = fig.axes
    (median,) = [line for line in ax.lines if line.get_gid() == "agp:median"]
    # 15-min bins; the crafted readings are displayed 30-125 min after 22:00, 22:30 to 00:05
    median_by_bin = median.get_ydata()
    assert len(median_by_bin) == 96
    assert sum(1 for y in median_by_bin if y == y) == 7
    assert median_by_bin[90] == 60  # 22:30-22:45: LOW (40), 60, 60
    assert median_by_bin[0] == 300  # 00:00-00:15: 200 and HIGH (400)
    heights = {p.get_gid(): p.get_height() for p in bar.patches}
    assert heights == pytest.approx(
        {"tir:very_low": 5, "tir:low": 10, "tir:in_range": 60, "tir:high": 20, "tir:very_high": 5}
    )


def _collection(ax, gid):
    (found,) = [c for c in ax.collections if c.get_gid() == gid]
    return found


def test_session_figure_counts(crafted):
    run = load_run(crafted)
    ax, lanes = session_figure(run).axes
    assert len(_collection(ax, "sensor:live").get_offsets()) == 20 - len(BACKFILLED_AT)
    backfill = _collection(ax, "sensor:backfill").get_offsets()
    assert sorted(x * 60 for x in backfill[:, 0]) == pytest.approx(sorted(BACKFILLED_AT))
    assert len(_collection(ax, "gap:lost").get_offsets()) == 1
    assert len(_collection(ax, "gap:no_reading").get_offsets()) == 1
    assert {p.get_gid() for p in ax.patches if p.get_gid()} == {"phase:warmup", "phase:active"}
    assert len(_collection(lanes, "alert:low").get_offsets()) == 2
    labels = [t.get_text() for t in lanes.get_yticklabels()]
    assert labels == ["low (2)", "high (1)", "signal_loss (1)"]


def test_a_summary_without_a_clock_uses_the_simulator_default(tmp_path):
    run = load_run(write_run(tmp_path, clock=None))
    default = SimulationConfig().clock_at_zero
    assert default.replace(tzinfo=dt.UTC) == DEFAULT_CLOCK_AT_ZERO
    assert run.clock_at_zero == DEFAULT_CLOCK_AT_ZERO


def _spoil(name, how):
    def apply(run_dir):
        path = run_dir / name
        if how is None:
            path.unlink()
        else:
            path.write_text(how(path.read_text()))

    return apply


SPOILED = {
    "no events": (_spoil("events.jsonl", None), "events.jsonl: missing"),
    "summary not JSON": (_spoil("summary.json", lambda t: t[:-3]), "summary.json line 1"),
    "bad number": (
        _spoil("readings.csv", lambda t: t.replace("30,50.0", "30,fifty", 1)),
        "readings.csv line 8: reference_mgdl 'fifty'",
    ),
    "bad event": (_spoil("events.jsonl", lambda t: t + '{"kind": 3}\n'), "events.jsonl line"),
    "no header": (_spoil("readings.csv", lambda t: t.split("\n", 1)[1]), "header lacks"),
}


@pytest.mark.parametrize("case", sorted(SPOILED))
def test_a_bad_run_dir_is_one_line_and_exit_2(tmp_path, case):
    spoil, expected = SPOILED[case]
    run_dir = write_run(tmp_path / "run")
    spoil(run_dir)
    result = CliRunner().invoke(report_command, [str(run_dir)])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert expected in line
    assert not (run_dir / "report.html").exists()


def test_no_run_dir_at_all(tmp_path):
    result = CliRunner().invoke(report_command, [str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
