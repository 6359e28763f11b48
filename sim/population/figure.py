"""population.png: a study at a glance, drawn from population.json (headless Agg canvas, no
pyplot, as ``sim.rundir.plots``).

Top left: true alert rate and detection rate per alert type, with the published 84 % Urgent Low
Soon anchor as a dashed line. Top right: false alerts per day per alert type. Bottom left: the
per-session MARD histogram. Bottom right: reference times in ranges per patient group.
Artists carry gids so tests can find them: ``rates``, ``false_per_day``, ``mard``, ``tir:GROUP``.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RANGES = (  # (label, colour) of the stacked bands, lowest first
    ("<54", "#a50f15"),
    ("54-69", "#ef3b2c"),
    ("70-180", "#41ab5d"),
    ("181-250", "#fdae61"),
    (">250", "#f46d43"),
)


def _bands(tir: dict[str, float]) -> list[float]:
    return [
        tir["time_below_54"],
        tir["time_below_70"] - tir["time_below_54"],
        tir["time_in_range_70_180"],
        tir["time_above_180"] - tir["time_above_250"],
        tir["time_above_250"],
    ]


def population_figure(data: dict[str, Any]) -> Figure:
    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)
    (rates, false), (mard, tir) = figure.subplots(2, 2)
    performance = data["alert_performance"]
    names = list(performance)
    x = np.arange(len(names))
    true_rate = [performance[n]["true_alert_rate"] or 0.0 for n in names]
    detection = [performance[n]["detection_rate"] or 0.0 for n in names]
    rates.bar(x - 0.2, true_rate, 0.4, label="true alert rate", gid="rates")
    rates.bar(x + 0.2, detection, 0.4, label="detection rate", gid="rates")
    rates.axhline(data["anchor"]["published_percent"], ls="--", c="k", lw=1)
    rates.text(-0.45, data["anchor"]["published_percent"] + 1, "G6 ULS anchor 84 %", fontsize=8)
    rates.set_xticks(x, names)
    rates.set_ylim(0, 105)
    rates.set_ylabel("%")
    rates.legend(loc="lower right", fontsize=8)
    rates.set_title(f"Alert performance, {data['sessions']} sessions")
    per_day = [performance[n]["false_alerts_per_day"] or 0.0 for n in names]
    false.bar(x, per_day, 0.6, color="#d95f02", gid="false_per_day")
    false.set_xticks(x, names)
    false.set_ylabel("false alerts per day")
    false.set_title(f"{data['monitored_days']:.1f} monitored days")
    values = [row["mard"] for row in data["per_session"] if row["mard"] is not None]
    mard.hist(values, bins=20, color="#3182bd", gid="mard")
    pooled = (data.get("accuracy") or {}).get("mard")
    title = "Per-session MARD" + (f" (pooled {pooled:.1f} %)" if pooled is not None else "")
    mard.set_title(title)
    mard.set_xlabel("MARD %")
    mard.set_ylabel("sessions")
    groups = data["by_group"]
    for row, (group, entry) in enumerate(groups.items()):
        ranges = entry["reference_time_in_ranges"]
        if ranges is None:
            continue
        left = 0.0
        for (label, colour), width in zip(RANGES, _bands(ranges), strict=True):
            tir.barh(row, width, left=left, color=colour, label=label if row == 0 else None)
            left += width
        tir.patches[-1].set_gid(f"tir:{group}")
    tir.set_yticks(range(len(groups)), list(groups))
    tir.set_xlim(0, 100)
    tir.set_xlabel("% of time (reference glucose, mg/dL)")
    tir.set_title("Reference time in ranges by group")
    tir.legend(loc="lower right", fontsize=8, ncols=5)
    return figure


def write_figure(data: dict[str, Any], path: pathlib.Path) -> None:
    population_figure(data).savefig(path)
