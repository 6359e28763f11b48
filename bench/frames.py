"""CGM Measurement encode/decode throughput against a hand-written ``struct`` baseline.

The baseline does the same work for one known layout with no validation beyond the CRC:
``struct`` unpack/pack, SFLOAT conversion, CRC. The project's codecs add size/flags
validation, typed records, the flat-layout lookup and error reporting. Machines here are
shared and noisy, so the ratio is the number to compare across runs; rates are for one core.
"""

from __future__ import annotations

import struct
import timeit
from collections.abc import Callable

from protocol import sfloat
from protocol.cgms import measurement
from protocol.cgms.measurement import MeasurementRecord
from protocol.crc import crc16

MINIMAL = MeasurementRecord(glucose=120.0, time_offset=5)
ALL_OPTIONS = MeasurementRecord(
    glucose=120.0, time_offset=5, status=1, cal_temp=2, warning=3, trend=-1.5, quality=99.7
)
ALL_LAYOUT = struct.Struct("<BBHHBBBHHH")
MINIMAL_LAYOUT = struct.Struct("<BBHH")


def baseline_decode_all(data: bytes) -> tuple[object, ...]:
    _, _, glucose, offset, status, cal_temp, warning, trend, quality, crc = ALL_LAYOUT.unpack(data)
    if crc16(data[:-2]) != crc:
        raise ValueError("crc")
    return (
        sfloat.decode(glucose),
        offset,
        status,
        cal_temp,
        warning,
        sfloat.decode(trend),
        sfloat.decode(quality),
    )


def baseline_decode_minimal(data: bytes) -> tuple[object, ...]:
    _, _, glucose, offset = MINIMAL_LAYOUT.unpack(data)
    return (sfloat.decode(glucose), offset)


def baseline_encode_all(record: MeasurementRecord) -> bytes:
    body = ALL_LAYOUT.pack(
        15,
        0xE3,
        sfloat.encode(record.glucose),
        record.time_offset,
        record.status,
        record.cal_temp,
        record.warning,
        sfloat.encode(record.trend),
        sfloat.encode(record.quality),
        0,
    )[:-2]
    return body + crc16(body).to_bytes(2, "little")


def baseline_encode_minimal(record: MeasurementRecord) -> bytes:
    return MINIMAL_LAYOUT.pack(6, 0, sfloat.encode(record.glucose), record.time_offset)


def rate(function: Callable[[], object], seconds: float = 0.3) -> float:
    """Calls per second: best of five runs of about ``seconds`` each."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return number / min(timer.repeat(repeat=5, number=number))


def main() -> None:
    all_wire = measurement.encode([ALL_OPTIONS], e2e_crc=True)
    minimal_wire = measurement.encode([MINIMAL])
    assert baseline_encode_all(ALL_OPTIONS) == all_wire
    assert baseline_encode_minimal(MINIMAL) == minimal_wire
    assert measurement.decode(all_wire)[0] == ALL_OPTIONS
    cases = [
        (
            "decode all-options record + CRC",
            lambda: measurement.decode(all_wire),
            lambda: baseline_decode_all(all_wire),
        ),
        (
            "decode minimal record",
            lambda: measurement.decode(minimal_wire),
            lambda: baseline_decode_minimal(minimal_wire),
        ),
        (
            "encode all-options record + CRC",
            lambda: measurement.encode([ALL_OPTIONS], e2e_crc=True),
            lambda: baseline_encode_all(ALL_OPTIONS),
        ),
        (
            "encode minimal record",
            lambda: measurement.encode([MINIMAL]),
            lambda: baseline_encode_minimal(MINIMAL),
        ),
    ]
    print(f"{'CGM Measurement':34} {'cgmsim /s':>12} {'struct /s':>12} {'ratio':>7}")
    for name, ours, baseline in cases:
        ours_rate, base_rate = rate(ours), rate(baseline)
        print(f"{name:34} {ours_rate:12,.0f} {base_rate:12,.0f} {ours_rate / base_rate:7.2f}")
    print("target: >= 40,000 all-options record decodes per second on one core")


if __name__ == "__main__":
    main()
