"""report.html: one self-contained page (inline CSS, images as base64 data URIs, no scripts,
no external assets), so it can be mailed or attached to a CI run as a single file.

Tables carry machine-readable attributes: each row of the time-in-range table has
``data-band`` (very_low, low, in_range, high, very_high), each row of the alert table
``data-alert`` (the alert name), and every number cell ``data-key`` naming the value, e.g.
``<td data-key="raised">3</td>``. Percentages are shown with one decimal.
"""

from __future__ import annotations

import base64
import html
from typing import Any

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.met { color: #1a7f37; } .missed { color: #b42318; font-weight: bold; }
img { max-width: 100%; }
"""


def _number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"


def _cell(key: str, value: float | int | None, digits: int = 1) -> str:
    return f'<td data-key="{key}">{_number(value, digits)}</td>'


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(caption: str, head: list[str], rows: list[str], table_id: str) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<table id="{table_id}"><caption>{html.escape(caption)}</caption>'
        f"<tr>{header}</tr>{''.join(rows)}</table>"
    )


def _glycemia(numbers: dict[str, Any]) -> str:
    rows = []
    for row in numbers["time_in_ranges"]:
        verdict = "met" if row["met"] else "missed"
        rows.append(
            f'<tr data-band="{row["band"]}"><td>{html.escape(row["label"])} mg/dL</td>'
            f"{_cell('percent', row['percent'])}<td>{html.escape(row['target'])}</td>"
            f'<td class="{verdict}">{verdict}</td></tr>'
        )
    tir = _table(
        "Time in ranges (Battelino et al., Diabetes Care 42:1593, 2019)",
        ["range", "% of readings", "consensus target", ""],
        rows,
        "time-in-ranges",
    )
    glucose, readings = numbers["glucose"] or {}, numbers["readings"]
    cv_verdict = "met" if glucose.get("cv_target_met") else "missed"
    core = [
        f"<tr><td>mean glucose (mg/dL)</td>{_cell('mean_mgdl', glucose.get('mean_mgdl'))}"
        "<td></td></tr>",
        f"<tr><td>GMI (%)</td>{_cell('gmi_percent', glucose.get('gmi_percent'))}<td></td></tr>",
        f"<tr><td>coefficient of variation (%)</td>"
        f"{_cell('cv_percent', glucose.get('cv_percent'))}"
        f'<td class="{cv_verdict}">target &le; 36 %</td></tr>',
        f"<tr><td>CGM active (%)</td>{_cell('active_percent', readings['active_percent'])}"
        f"<td>{_number(readings['displayed'])} of {_number(readings['expected'])} readings</td>"
        "</tr>",
        f"<tr><td>days of data</td>{_cell('days_of_data', readings['days_of_data'], 2)}"
        "<td>consensus: 14 days, &ge; 70 % active</td></tr>",
    ]
    return tir + _table("Glucose", ["metric", "value", ""], core, "glucose")


def _readings(numbers: dict[str, Any]) -> str:
    readings = numbers["readings"]
    names = ("displayed", "live", "backfilled", "lost", "no_reading", "expected")
    rows = [
        f"<tr><td>{name.replace('_', ' ')}</td>{_cell(name, readings[name])}</tr>" for name in names
    ]
    return _table("Readings", ["", "count"], rows, "readings")


def _accuracy(numbers: dict[str, Any]) -> str:
    scored = numbers["accuracy"]
    if scored is None:
        return "<p>Accuracy: no displayed reading with a reference.</p>"
    names = {
        "pairs": "pairs",
        "mard": "MARD (%)",
        "bias_mgdl": "bias (mg/dL)",
        "within_15_15": "within 15/15 (%)",
        "within_20_20": "within 20/20 (%)",
        "within_40_40": "within 40/40 (%)",
        "clarke_a": "Clarke zone A (%)",
    }
    rows = [
        f"<tr><td>{label}</td>{_cell(key, scored[key], 2)}</tr>" for key, label in names.items()
    ]
    return _table("Accuracy against the reference glucose", ["", "value"], rows, "accuracy")


def _alerts(numbers: dict[str, Any]) -> str:
    rows = [
        f'<tr data-alert="{html.escape(row["alert"])}"><td>{html.escape(row["alert"])}</td>'
        f"{_cell('raised', row['raised'])}{_cell('repeated', row['repeated'])}"
        f"{_cell('acknowledged', row['acknowledged'])}</tr>"
        for row in numbers["alerts"]
    ]
    if not rows:
        return "<p>Alerts: none raised.</p>"
    return _table("Alerts", ["alert", "raised", "repeated", "acknowledged"], rows, "alerts")


def page(numbers: dict[str, Any], report_png: bytes, session_png: bytes | None) -> str:
    """The whole HTML document."""
    title = f"cgmsim report: {numbers['profile']} session, seed {numbers['seed']}"
    about = (
        f"Run directory {html.escape(numbers['run_dir'])}; reference "
        f"{html.escape(str(numbers['reference']))}; session start "
        f"{html.escape(numbers['clock_at_zero'])}."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{about}</p>",
        _image(report_png, "ambulatory glucose profile and time in ranges"),
        _glycemia(numbers),
        _readings(numbers),
        _accuracy(numbers),
        _alerts(numbers),
    ]
    if session_png is not None:
        parts += ["<h2>The session</h2>", _image(session_png, "the whole session")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
