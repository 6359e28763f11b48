"""`make run` until the session simulation exists: a tour of the CGMS wire protocol.

A few readings go through the real codecs: encoded as the sensor would notify them (with
E2E-CRC), packed into notifications, decoded as a collector would, and printed side by side.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from protocol.cgms import attributes, measurement, racp, socp
from protocol.cgms.annunciation import WarningFlags
from protocol.cgms.attributes import Feature, FeatureFlags, SessionStartTime, Status

FEATURES = (
    FeatureFlags.E2E_CRC
    | FeatureFlags.TREND_INFORMATION
    | FeatureFlags.QUALITY
    | FeatureFlags.SENSOR_MALFUNCTION_DETECTION
    | FeatureFlags.SENSOR_RESULT_HIGH_LOW_DETECTION
)
READINGS = (  # (minutes since session start, mg/dL, trend mg/dL/min)
    (30, 112, 0.4),
    (35, 118, 1.2),
    (40, 131, 2.1),
    (45, 146, 2.9),
    (50, 38, -3.4),
    (55, 401, 3.1),
)


def _record(minute: int, glucose: int, trend: float) -> measurement.MeasurementRecord:
    warning = None
    if glucose < 40:
        warning = WarningFlags.RESULT_LOWER_THAN_DEVICE_CAN_PROCESS
    elif glucose > 400:
        warning = WarningFlags.RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS
    return measurement.MeasurementRecord(
        glucose=float(min(max(glucose, 40), 400)),
        time_offset=minute,
        warning=warning,
        trend=trend,
    )


def run() -> None:
    console = Console()
    feature = attributes.encode_feature(Feature(FEATURES))
    console.print(f"CGM Feature   {feature.hex(' ')}  -> {attributes.decode_feature(feature)}")
    status = attributes.STATUS_CODEC.encode(Status(time_offset=55), e2e_crc=True)
    console.print(f"CGM Status    {status.hex(' ')}  -> {attributes.STATUS_CODEC.decode(status)}")
    start = SessionStartTime(2026, 11, 28, 9, 0, 0, time_zone=4, dst=0)
    start_bytes = attributes.SESSION_START_TIME_CODEC.encode(start, e2e_crc=True)
    console.print(f"Session start {start_bytes.hex(' ')}  -> {start}")

    table = Table(title="CGM Measurement notifications (E2E-CRC on, ATT MTU 23: 20-byte payloads)")
    for column in ("notification", "bytes on the wire", "min", "mg/dL", "trend", "warning"):
        table.add_column(column)
    records = [_record(*reading) for reading in READINGS]
    number, pending = 0, []
    for record in [*records, None]:
        fits = (
            record is not None
            and sum(measurement.record_size(r, True) for r in [*pending, record]) <= 20
        )
        if pending and not fits:
            number += 1
            wire = measurement.encode(pending, e2e_crc=True)
            for index, decoded in enumerate(measurement.decode(wire, e2e_crc=True)):
                table.add_row(
                    str(number) if index == 0 else "",
                    wire.hex(" ") if index == 0 else "",
                    str(decoded.time_offset),
                    f"{decoded.glucose:g}",
                    f"{decoded.trend:+g}",
                    WarningFlags(decoded.warning).name.lower() if decoded.warning else "",
                )
            pending = []
        if record is not None:
            pending.append(record)
    console.print(table)

    exchange = (
        (
            "collector -> RACP",
            racp.encode(
                racp.request(
                    racp.RacpOpcode.REPORT_STORED_RECORDS,
                    racp.RacpOperator.GREATER_THAN_OR_EQUAL_TO,
                    40,
                )
            ),
        ),
        (
            "sensor -> RACP",
            racp.encode(
                racp.response(racp.RacpOpcode.REPORT_STORED_RECORDS, racp.RacpResponseCode.SUCCESS)
            ),
        ),
        (
            "collector -> SOCP",
            socp.encode(
                socp.SocpFrame(socp.SocpOpcode.SET_PATIENT_LOW_ALERT_LEVEL, level=70.0),
                e2e_crc=True,
            ),
        ),
        (
            "sensor -> SOCP",
            socp.encode(
                socp.response(
                    socp.SocpOpcode.SET_PATIENT_LOW_ALERT_LEVEL, socp.SocpResponseCode.SUCCESS
                ),
                e2e_crc=True,
            ),
        ),
    )
    for who, wire in exchange:
        decoded = racp.fields(wire) if "RACP" in who else socp.fields(wire, e2e_crc=True)
        console.print(f"{who:18} {wire.hex(' '):24} {decoded}")
