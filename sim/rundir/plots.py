"""Figures of a run: ``session_figure`` (session.png) and ``report_figure`` (report.png).

Headless: figures are built on matplotlib's Agg canvas directly (no pyplot, no global state),
so they work without a display and can be inspected by tests before they are saved.

session.png, top panel (glucose): the target range 70-180 mg/dL as a green band; phases shaded
(warm-up grey, active light blue, grace amber, ended/failed red) and named along the top; the
reference glucose as a grey line; displayed readings as points, live ones blue dots, backfilled
ones orange diamonds, joined by a thin line that breaks wherever a reading is missing; LOW and
HIGH drawn at 40 and 400. Along the bottom a rug marks every 5-min slot of the wear window
without a displayed reading: red crosses where the transmitter made a reading that never
reached the receiver (``lost``), grey bars where the sensor gave none (``no reading``).
Bottom panel (alerts): one lane per alert name that occurred, labelled with the name and its
count; a triangle at every ``alert_raised`` and a bar while the alert stays raised (to its
``alert_cleared`` or the end of the run). The time axis is in hours for runs up to two days,
else in days.

Artists carry gids so tests can count what was drawn: ``reference``, ``sensor:live``,
``sensor:backfill``, ``gap:lost``, ``gap:no_reading``, ``phase:NAME``, ``alert:NAME``.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim.rundir.files import ALERT_ORDER, Run
from sim.rundir.glycemia import AGP_PERCENTILES, agp

TARGET_MGDL = (70.0, 180.0)
PHASE_COLOURS = {
    "warmup": "#d9d9d9",
    "active": "#eef4fb",
    "grace": "#ffe3a6",
    "ended": "#f2c4c4",
    "failed": "#e89a9a",
}
DELIVERY_STYLE = {  # marker, colour, size
    "live": ("o", "#1f77b4", 4),
    "backfill": ("D", "#ff7f0e", 9),
}
GAP_STYLE = {"lost": ("x", "#d62728"), "no_reading": ("|", "#7f7f7f")}
TIR_COLOURS = {
    "very_low": "#a50f15",
    "low": "#ef3b2c",
    "in_range": "#41ab5d",
    "high": "#fdae61",
    "very_high": "#f46d43",
}
RUG_MGDL = 30.0
Y_LIMITS = (20.0, 420.0)


def _time_unit(end_min: float) -> tuple[float, str]:
    return (60.0, "hours") if end_min <= 2 * 1440 else (1440.0, "days")


def session_figure(run: Run) -> Figure:
    """The whole session at a glance (see the module docstring)."""
    raised = run.alerts_raised()
    lanes = [name for name in ALERT_ORDER if name in raised]
    lanes += sorted(set(raised) - set(lanes))
    fig = Figure(figsize=(14, 6.5 + 0.25 * len(lanes)), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=[5, 0.6 + 0.35 * max(len(lanes), 1)], hspace=0.08)
    ax = fig.add_subplot(grid[0])
    lanes_ax = fig.add_subplot(grid[1], sharex=ax)
    scale, unit = _time_unit(run.end_min)
    x = run.time_min / scale

    ax.axhspan(*TARGET_MGDL, color="#7fc97f", alpha=0.25, zorder=1, label="target 70-180")
    for start, end, name in run.phases():
        colour = PHASE_COLOURS.get(name, "#ffffff")
        ax.axvspan(
            start / scale, end / scale, color=colour, zorder=0, label=name, gid=f"phase:{name}"
        )
        lanes_ax.axvspan(start / scale, end / scale, color=colour, zorder=0)
        if (end - start) / max(run.end_min, 1e-9) > 0.03:
            ax.text(
                (start + end) / 2 / scale,
                Y_LIMITS[1] - 8,
                name,
                ha="center",
                va="top",
                fontsize=8,
                color="#555555",
            )
    ax.plot(
        x,
        run.reference_mgdl,
        color="#555555",
        linewidth=0.8,
        label="reference",
        gid="reference",
        zorder=2,
    )

    shown_mgdl = run.displayed_mgdl
    ax.plot(x, shown_mgdl, color="#1f77b4", linewidth=0.5, alpha=0.6, zorder=3)
    for how, (marker, colour, size) in DELIVERY_STYLE.items():
        pick = run.delivered(how) & run.shown
        ax.scatter(
            x[pick],
            shown_mgdl[pick],
            s=size,
            marker=marker,
            color=colour,
            zorder=4,
            label=f"sensor ({how})",
            gid=f"sensor:{how}",
        )
    missing = run.expected() & ~run.shown
    lost = missing & run.delivered("lost")
    for name, pick in (("lost", lost), ("no_reading", missing & ~lost)):
        marker, colour = GAP_STYLE[name]
        label = "lost reading" if name == "lost" else "no reading"
        ax.scatter(
            x[pick],
            np.full(int(pick.sum()), RUG_MGDL),
            s=25,
            marker=marker,
            color=colour,
            zorder=4,
            label=label,
            gid=f"gap:{name}",
        )

    _alert_lanes(lanes_ax, run, lanes, raised, scale)
    ax.set_xlim(0, run.end_min / scale)
    ax.set_ylim(*Y_LIMITS)
    ax.set_ylabel("glucose (mg/dL)")
    ax.tick_params(labelbottom=False)
    lanes_ax.set_xlabel(f"{unit} since session start")
    summary = run.summary
    ax.set_title(
        f"{run.profile} session, seed {summary.get('seed')}, {summary.get('reference', '')}"
    )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(
        unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8
    )
    fig.subplots_adjust(left=0.12, right=0.86, top=0.95, bottom=0.08)
    return fig


def _alert_lanes(ax: Any, run: Run, lanes: list[str], raised: Any, scale: float) -> None:
    lane_of = {name: i for i, name in enumerate(lanes)}
    opened: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in lanes}
    for event in run.events:
        name = event.get("alert")
        if event["kind"] == "alert_raised" and name in lane_of:
            opened.setdefault(name, float(event["t_min"]))
        elif event["kind"] == "alert_cleared" and name in opened:
            spans[name].append((opened.pop(name), float(event["t_min"])))
    for name, start in opened.items():
        spans[name].append((start, run.end_min))
    for name in lanes:
        lane = lane_of[name]
        times = np.array(
            [
                float(e["t_min"])
                for e in run.events
                if e["kind"] == "alert_raised" and e["alert"] == name
            ]
        )
        for start, end in spans[name]:
            ax.plot(
                [start / scale, end / scale],
                [lane, lane],
                color="#c0392b",
                linewidth=4,
                alpha=0.35,
                solid_capstyle="butt",
            )
        ax.scatter(
            times / scale,
            np.full(times.size, lane),
            marker="v",
            s=30,
            color="#c0392b",
            zorder=3,
            gid=f"alert:{name}",
        )
    ax.set_yticks(range(len(lanes)), [f"{name} ({raised[name]})" for name in lanes], fontsize=8)
    ax.set_ylim(len(lanes) - 0.5, -0.5) if lanes else ax.set_ylim(-0.5, 0.5)
    if not lanes:
        ax.set_yticks([0], ["no alerts"], fontsize=8)
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)


def report_figure(run: Run, numbers: dict[str, Any]) -> Figure:
    """report.png: the AGP daily overlay and the time-in-range bar (glycemia.summarise)."""
    fig = Figure(figsize=(13, 5), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=[5, 1], wspace=0.25)
    ax = fig.add_subplot(grid[0])
    profile = agp(run)
    hours = profile["clock_min"] / 60
    ax.axhspan(*TARGET_MGDL, color="#7fc97f", alpha=0.2, zorder=0)
    for level in TARGET_MGDL:
        ax.axhline(level, color="#41ab5d", linewidth=1)
    low, high = AGP_PERCENTILES[0], AGP_PERCENTILES[-1]
    ax.fill_between(
        hours,
        profile[f"p{low}"],
        profile[f"p{high}"],
        color="#9ecae1",
        alpha=0.6,
        label=f"{low}-{high} %",
        gid="agp:5-95",
    )
    ax.fill_between(
        hours,
        profile["p25"],
        profile["p75"],
        color="#3182bd",
        alpha=0.6,
        label="25-75 %",
        gid="agp:25-75",
    )
    ax.plot(hours, profile["p50"], color="#08306b", linewidth=2, label="median", gid="agp:median")
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3), [f"{h:02d}:00" for h in range(0, 25, 3)])
    ax.set_ylim(*Y_LIMITS)
    ax.set_xlabel(f"time of day ({run.clock_at_zero.tzname() or 'UTC'})")
    ax.set_ylabel("glucose (mg/dL)")
    days = numbers["readings"]["days_of_data"] or 0.0
    ax.set_title(f"Ambulatory glucose profile: {run.profile}, {days:.1f} days of data")
    ax.legend(loc="upper left", fontsize=8)

    bar = fig.add_subplot(grid[1])
    bottom = 0.0
    for row in numbers["time_in_ranges"]:
        key = row["band"]
        bar.bar(
            0, row["percent"], bottom=bottom, color=TIR_COLOURS[key], width=0.6, gid=f"tir:{key}"
        )
        if row["percent"] >= 2:
            bar.text(
                0.4,
                bottom + row["percent"] / 2,
                f"{row['label']}: {row['percent']:.1f} %",
                va="center",
                fontsize=8,
            )
        bottom += row["percent"]
    bar.set_xlim(-0.5, 2.5)
    bar.set_ylim(0, 100)
    bar.set_xticks([])
    bar.set_ylabel("% of readings")
    bar.set_title("time in ranges")
    fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.12)
    return fig


def save(fig: Figure, path: pathlib.Path) -> None:
    fig.savefig(path)
