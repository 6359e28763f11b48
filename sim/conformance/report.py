"""Conformance results as text (one line per case id), JSON and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

from sim.conformance.registry import Result, Verdict

FRAMES_KEPT = 200  # per case in JSON/JUnit; a report of all records can log hundreds
FRAMES_SHOWN = 6  # on a FAIL or INCONCLUSIVE line


def summary(results: list[Result]) -> dict[str, int]:
    counts = Counter(result.verdict.value for result in results)
    return {verdict.value: counts.get(verdict.value, 0) for verdict in Verdict}


def failed(results: list[Result]) -> bool:
    return any(result.verdict is Verdict.FAIL for result in results)


def line(result: Result) -> str:
    """``VERDICT  ID  title: reason [spec]`` and, for FAIL and INCONCLUSIVE, the last frames."""
    text = (
        f"{result.verdict.value:<14} {result.case.id:<26} {result.case.title}: {result.reason}"
        f" [{result.case.spec}]"
    )
    if result.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE) and result.frames:
        text += " | frames: " + "; ".join(result.frames[-FRAMES_SHOWN:])
    return text


def to_json(results: list[Result], **header: Any) -> dict[str, Any]:
    return {
        **header,
        "summary": summary(results),
        "cases": [
            {
                "id": r.case.id,
                "title": r.case.title,
                "spec": r.case.spec,
                "verdict": r.verdict.value,
                "reason": r.reason,
                "destructive": r.case.destructive,
                "seconds": round(r.seconds, 3),
                "frames": r.frames[-FRAMES_KEPT:],
            }
            for r in results
        ],
    }


def to_junit(results: list[Result], suite: str, wall_seconds: float) -> bytes:
    """JUnit XML: FAIL is a failure; NOT APPLICABLE, NOT RUN and INCONCLUSIVE are skipped, with
    the verdict in the message; the frames go to system-out."""
    counts = summary(results)
    skipped = len(results) - counts["PASS"] - counts["FAIL"]
    root = ET.Element("testsuites")
    node = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(counts["FAIL"]),
        errors="0",
        skipped=str(skipped),
        time=f"{wall_seconds:.3f}",
    )
    for r in results:
        test = ET.SubElement(
            node,
            "testcase",
            classname=r.case.group.replace("/", "."),
            name=f"{r.case.id} {r.case.title}",
            time=f"{r.seconds:.3f}",
        )
        message = f"{r.verdict.value}: {r.reason} [{r.case.spec}]"
        if r.verdict is Verdict.FAIL:
            ET.SubElement(test, "failure", message=message, type="FAIL").text = "\n".join(
                r.frames[-FRAMES_KEPT:]
            )
        elif r.verdict is not Verdict.PASS:
            ET.SubElement(test, "skipped", message=message)
        if r.frames:
            ET.SubElement(test, "system-out").text = "\n".join(r.frames[-FRAMES_KEPT:])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
