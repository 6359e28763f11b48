"""Interoperability: our CGMS encoders against an independent decoder, Wireshark's tshark.

Every frame below is built with our encoders (``protocol.cgms``), carried in one btsnoop capture
of a real GATT session (``tests.support.gatt_capture``: discovery, reads, writes, notifications,
indications) and dissected once by tshark. For each frame the test asserts that

- tshark saw exactly the bytes we sent (ATT opcode, characteristic, value; in order),
- our decoder gives back what we encoded (so an encoder defect cannot hide behind a matching
  decoder defect),
- tshark decodes the same values our decoder (``codec.fields``) does,
- every E2E-CRC equals an independent CRC-16/MCRF4XX (tshark shows the CRC but never checks it).

Wireshark 4.0 quirks (../shared/spec/cgms.md, "Independent decoder"), handled where they apply:
measurement flag *labels* are bit-reversed (so the flags octet is compared as a raw value, never
per bit); the type/location nibbles are shown swapped; SOCP *responses* are mis-dissected (only
SOCP requests are sent); any two bytes left over after a dissected value are labelled as a CRC
(tshark dissects only the first record of a notification). Not in that list: every valid
measurement record draws a bogus "Size too small" expert warning (see BOGUS_SIZE_WARNING).
"""

from __future__ import annotations

import binascii
import json
import pathlib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from protocol.cgms import attributes, gatt, racp
from protocol.cgms.attributes import Feature, FeatureFlags, SessionRunTime, SessionStartTime, Status
from protocol.cgms.codecs import CODECS
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOpcode, RacpOperator, RacpResponseCode
from protocol.cgms.socp import CalibrationRecord, SocpFrame, SocpOpcode
from protocol.sfloat import SFloatSpecial
from tests.support import tshark
from tests.support.gatt_capture import CaptureScript, write_capture

pytestmark = pytest.mark.tshark

READ_RESPONSE, WRITE_REQUEST, NOTIFICATION, INDICATION = 0x0B, 0x12, 0x1B, 0x1D
# Wireshark 4.0 flags every CGM Measurement size byte >= 6 (its check is inverted: it means < 6),
# so this warning is noise on valid records; any other expert message fails the test.
BOGUS_SIZE_WARNING = "Size too small (6 or geater)"


@dataclass(frozen=True)
class Frame:
    """One value on the air, built by our encoder from ``intent``."""

    name: str
    att_opcode: int
    characteristic: gatt.Characteristic
    intent: Any  # what we encoded: decode(value, e2e_crc) must give it back
    e2e_crc: bool

    @property
    def codec(self) -> Any:
        return CODECS[self.characteristic.name]

    @property
    def value(self) -> bytes:
        return self.codec.encode(self.intent, self.e2e_crc)

    @property
    def decoded(self) -> Any:
        # Feature's CRC rule comes from its own E2E bit; the others take ours.
        return self.codec.decode(self.value, self.e2e_crc)


# --- the frames ---

R = MeasurementRecord
ANNUNCIATION_CASES: dict[str, MeasurementRecord] = {
    "plain": R(120.0, 5),
    "trend": R(98.0, 6, trend=-0.2),
    "quality": R(101.0, 7, quality=99.7),
    "status": R(102.0, 8, status=0x21),
    "cal_temp": R(103.0, 9, cal_temp=0x05),
    "warning": R(104.0, 10, warning=0x18),
    # three distinct octets: a wrong octet order cannot go unnoticed
    "all": R(105.0, 11, status=0x01, cal_temp=0x02, warning=0x04, trend=1.5, quality=85.0),
}
SFLOAT_CASES: dict[str, MeasurementRecord] = {
    "exp-2": R(12.34, 12, trend=-1.25, quality=0.5),
    "exp1": R(15000.0, 13, trend=-12.5, quality=100.0),
    "exp-3": R(0.005, 14, trend=-1000.0),
    "exp-8": R(0.00000123, 15),
    "exp7": R(2045e7, 16, trend=-2045.0),
    "mantissa-max": R(204.5, 0xFFFF, quality=20.45),
    "nan-nres": R(SFloatSpecial.NAN, 17, trend=SFloatSpecial.NRES),
    "inf-rfu": R(
        SFloatSpecial.POSITIVE_INFINITY,
        18,
        trend=SFloatSpecial.NEGATIVE_INFINITY,
        quality=SFloatSpecial.RESERVED,
    ),
    # LOW / HIGH: outside what the device can process (Warning b6 / b7)
    "low": R(39.0, 19, warning=0x40),
    "high": R(401.0, 20, warning=0x80),
    "high-all": R(401.0, 21, status=0x20, cal_temp=0x30, warning=0x82, trend=5.5, quality=50.0),
}
MULTI_RECORD = (R(100.0, 30, warning=0x01), R(101.0, 31), R(102.0, 32, trend=-0.5))


def _measurements() -> list[Frame]:
    frames = []
    for name, record in ANNUNCIATION_CASES.items():
        for crc in (False, True):
            frames.append(
                Frame(
                    f"measurement-{name}{'-crc' if crc else ''}",
                    NOTIFICATION,
                    gatt.MEASUREMENT,
                    (record,),
                    crc,
                )
            )
    for name, record in SFLOAT_CASES.items():
        crc = name in ("exp-2", "high-all")
        frames.append(Frame(f"measurement-{name}", NOTIFICATION, gatt.MEASUREMENT, (record,), crc))
    frames += [
        Frame("measurement-3-records", NOTIFICATION, gatt.MEASUREMENT, MULTI_RECORD, False),
        Frame("measurement-3-records-crc", NOTIFICATION, gatt.MEASUREMENT, MULTI_RECORD, True),
    ]
    return frames


ALL_FEATURES = (1 << 17) - 1
READS: list[Frame] = [
    Frame("feature-e2e", READ_RESPONSE, gatt.FEATURE, Feature(ALL_FEATURES), True),
    Frame(
        "feature-no-e2e",
        READ_RESPONSE,
        gatt.FEATURE,
        Feature(ALL_FEATURES & ~FeatureFlags.E2E_CRC, type=2, location=1),
        False,
    ),
    Frame("status-crc", READ_RESPONSE, gatt.STATUS, Status(5, 0x01, 0x02, 0x04), True),
    Frame("status", READ_RESPONSE, gatt.STATUS, Status(300, 0x20, 0x10, 0x80), False),
    Frame(
        "session-start-time-crc",
        READ_RESPONSE,
        gatt.SESSION_START_TIME,
        SessionStartTime(2024, 3, 4, 5, 6, 7, time_zone=-20, dst=4),
        True,
    ),
    Frame(
        "session-start-time-unknown",
        READ_RESPONSE,
        gatt.SESSION_START_TIME,
        SessionStartTime(2025, 12, 31, 23, 59, 58),  # time zone -128 and DST 255: unknown
        False,
    ),
    Frame("session-run-time-crc", READ_RESPONSE, gatt.SESSION_RUN_TIME, SessionRunTime(168), True),
    Frame("session-run-time", READ_RESPONSE, gatt.SESSION_RUN_TIME, SessionRunTime(336), False),
]

RACP_REQUESTS = [
    ("report-all", racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS)),
    (
        "report-ge",
        racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.GREATER_THAN_OR_EQUAL_TO, 300),
    ),
    (
        "delete-le",
        racp.request(RacpOpcode.DELETE_STORED_RECORDS, RacpOperator.LESS_THAN_OR_EQUAL_TO, 7),
    ),
    (
        "count-range",
        racp.request(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.WITHIN_RANGE_OF, (3, 0x1234)
        ),
    ),
    ("report-first", racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.FIRST_RECORD)),
    ("report-last", racp.request(RacpOpcode.REPORT_STORED_RECORDS, RacpOperator.LAST_RECORD)),
    ("abort", racp.request(RacpOpcode.ABORT_OPERATION, RacpOperator.NULL)),
]
RACP_RESPONSES = [
    ("count-300", racp.number_of_records(300)),
    ("count-0", racp.number_of_records(0)),
    ("report-success", racp.response(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)),
    (
        "report-none",
        racp.response(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND),
    ),
    ("abort-success", racp.response(RacpOpcode.ABORT_OPERATION, RacpResponseCode.SUCCESS)),
    (
        "count-unsupported",
        racp.response(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpResponseCode.OPERAND_NOT_SUPPORTED
        ),
    ),
]

Op = SocpOpcode
SOCP_REQUESTS: list[tuple[str, SocpFrame, bool]] = [
    ("set-interval", SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=5), False),
    ("set-interval-fastest", SocpFrame(Op.SET_COMMUNICATION_INTERVAL, interval_min=0xFF), True),
    ("get-interval", SocpFrame(Op.GET_COMMUNICATION_INTERVAL), False),
    ("get-interval", SocpFrame(Op.GET_COMMUNICATION_INTERVAL), True),
    (
        "set-calibration",
        SocpFrame(
            Op.SET_CALIBRATION_VALUE,
            calibration=CalibrationRecord(95.5, 30, type=2, location=1, next_calibration_time=720),
        ),
        False,
    ),
    (
        "set-calibration",
        SocpFrame(
            Op.SET_CALIBRATION_VALUE,
            calibration=CalibrationRecord(
                123.0,
                0x1234,
                type=4,
                location=2,
                next_calibration_time=0,
                record_number=7,
                status=5,
            ),
        ),
        True,
    ),
    ("get-calibration-last", SocpFrame(Op.GET_CALIBRATION_VALUE, record_number=0xFFFF), False),
    ("get-calibration", SocpFrame(Op.GET_CALIBRATION_VALUE, record_number=3), True),
    ("set-patient-high", SocpFrame(Op.SET_PATIENT_HIGH_ALERT_LEVEL, level=250.0), True),
    ("set-patient-low", SocpFrame(Op.SET_PATIENT_LOW_ALERT_LEVEL, level=70.0), False),
    ("set-hypo", SocpFrame(Op.SET_HYPO_ALERT_LEVEL, level=55.5), False),
    ("set-hyper", SocpFrame(Op.SET_HYPER_ALERT_LEVEL, level=1800.0), True),
    ("set-rate-decrease", SocpFrame(Op.SET_RATE_OF_DECREASE_ALERT_LEVEL, level=2.5), False),
    ("set-rate-increase", SocpFrame(Op.SET_RATE_OF_INCREASE_ALERT_LEVEL, level=0.25), True),
    ("get-patient-high", SocpFrame(Op.GET_PATIENT_HIGH_ALERT_LEVEL), False),
    ("get-hypo", SocpFrame(Op.GET_HYPO_ALERT_LEVEL), True),
    ("get-rate-increase", SocpFrame(Op.GET_RATE_OF_INCREASE_ALERT_LEVEL), False),
    ("reset-device-alert", SocpFrame(Op.RESET_DEVICE_SPECIFIC_ALERT), False),
    ("start-session", SocpFrame(Op.START_SESSION), True),
    ("stop-session", SocpFrame(Op.STOP_SESSION), False),
]

WRITES: list[Frame] = [
    Frame(
        "write-session-start-time-crc",
        WRITE_REQUEST,
        gatt.SESSION_START_TIME,
        SessionStartTime(2024, 3, 4, 9, 30, 0, time_zone=4, dst=0),
        True,
    ),
    *(Frame(f"racp-{name}", WRITE_REQUEST, gatt.RACP, f, False) for name, f in RACP_REQUESTS),
    *(
        Frame(f"socp-{name}{'-crc' if crc else ''}", WRITE_REQUEST, gatt.SOCP, f, crc)
        for name, f, crc in SOCP_REQUESTS
    ),
]
INDICATIONS: list[Frame] = [
    Frame(f"racp-{name}", INDICATION, gatt.RACP, f, False) for name, f in RACP_RESPONSES
]
# The capture's order (gatt_capture: reads, writes, notifications, indications).
FRAMES: list[Frame] = READS + WRITES + _measurements() + INDICATIONS


def _script() -> CaptureScript:
    reads: dict[int, bytes | Sequence[bytes]] = {
        uuid: [f.value for f in READS if f.characteristic.uuid == uuid]
        for uuid in dict.fromkeys(f.characteristic.uuid for f in READS)
    }
    return CaptureScript(
        reads=reads,
        writes=[(f.characteristic.uuid, f.value) for f in WRITES],
        notifications=[f.value for f in FRAMES if f.att_opcode == NOTIFICATION],
        indications=[(f.characteristic.uuid, f.value) for f in INDICATIONS],
    )


# --- running tshark ---


@dataclass(frozen=True)
class Dissected:
    """One ATT PDU as tshark shows it: what it carried and every field, flattened."""

    att_opcode: int
    uuid: int
    value: bytes
    fields: dict[str, list[str]]

    def get(self, name: str) -> str | None:
        """The one value of field ``name`` (``btatt.`` prefix implied), or None if absent."""
        values = self.fields.get(f"btatt.{name}", [])
        assert len(values) <= 1, f"tshark shows {name} {len(values)} times: {values}"
        return values[0] if values else None

    def integer(self, name: str) -> int | None:
        text = self.get(name)
        return None if text is None else int(text, 0)  # "5", "-4", "0x0a"

    def sfloat(self, name: str) -> float | str | None:
        text = self.get(name)
        if text is None or text in ("NaN", "NRes", "+INFINITY", "-INFINITY"):
            return text
        if text == "RFU":  # 0x0801, "reserved for future use"; ours is labelled "reserved"
            return SFloatSpecial.RESERVED.label
        return float(text)


def _flatten(node: dict[str, Any], out: dict[str, list[str]]) -> None:
    for key, value in node.items():
        if key.endswith("_raw"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _flatten(item, out)
            else:
                out.setdefault(key, []).append(item)


def _dissect(capture: pathlib.Path) -> list[Dissected]:
    opcodes = ", ".join(
        f"0x{op:02x}" for op in (READ_RESPONSE, WRITE_REQUEST, NOTIFICATION, INDICATION)
    )
    # -x adds each layer's raw bytes (btatt_raw: the whole ATT PDU); -n: no name resolution.
    result = subprocess.run(
        [
            *("tshark", "-n", "-r", str(capture), "-x", "-T", "json", "--no-duplicate-keys"),
            *("-Y", f"btatt.opcode in {{{opcodes}}}"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"tshark failed: {result.stderr}"
    cgm_uuids = {char.uuid for char in gatt.CHARACTERISTICS}
    packets = []
    for packet in json.loads(result.stdout):
        layers = packet["_source"]["layers"]
        btatt = layers["btatt"]
        uuid = int(btatt["btatt.handle_tree"]["btatt.uuid16"], 16)
        if uuid not in cgm_uuids:  # CCCD writes
            continue
        # opcode u8 | value for a read response; opcode u8 | handle u16 | value otherwise
        pdu = bytes.fromhex(layers["btatt_raw"][0])
        value = pdu[1:] if pdu[0] == READ_RESPONSE else pdu[3:]
        fields: dict[str, list[str]] = {}
        _flatten(btatt, fields)
        packets.append(Dissected(pdu[0], uuid, value, fields))
    return packets


@pytest.fixture(scope="module")
def dissected(tmp_path_factory) -> list[Dissected]:
    tshark.require()
    capture = tmp_path_factory.mktemp("tshark") / "cgms.btsnoop"
    write_capture(capture, _script())
    return _dissect(capture)


# --- an independent E2E-CRC ---


def _reverse(value: int, bits: int) -> int:
    return int(f"{value:0{bits}b}"[::-1], 2)


def independent_crc(data: bytes) -> int:
    """CRC-16/MCRF4XX from CPython's C ``binascii.crc_hqx`` (the unreflected CRC-CCITT, poly
    0x1021): the reflected CRC is the unreflected one over bit-reversed bytes, bit-reversed
    (the seed 0xFFFF and the missing final XOR are symmetric). Shares no code with protocol.crc."""
    mirrored = bytes(_reverse(byte, 8) for byte in data)
    return _reverse(binascii.crc_hqx(mirrored, 0xFFFF), 16)


def test_independent_crc_matches_the_catalogue():
    assert independent_crc(b"123456789") == 0x6F91  # CRC-16/MCRF4XX check value
    assert independent_crc(bytes.fromhex("3E 01 02 03 04 05 06 07 08 09")) == 0x2F01  # SPEC §3.11


# --- what each side says, as comparable dicts ---


def _measurement(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    records = frame.codec.fields(frame.value, frame.e2e_crc)["records"]
    # tshark dissects only the first record of a notification.
    ours = records[0]
    tshark = {
        "size": theirs.integer("cgm_measurement.size"),
        # Compared as a raw value: Wireshark 4.0's per-bit flag labels are bit-reversed.
        "flags": theirs.integer("cgm_measurement.flags"),
        "glucose": theirs.sfloat("cgm_measurement.glucose_concentration"),
        "time_offset": theirs.integer("cgm_measurement.time_offset"),
        "status": theirs.integer("cgm.sensor_status_annunciation.status"),
        "cal_temp": theirs.integer("cgm.sensor_status_annunciation.cal_temp"),
        "warning": theirs.integer("cgm.sensor_status_annunciation.warning"),
        "trend": theirs.sfloat("cgm_measurement.trend_information"),
        "quality": theirs.sfloat("cgm_measurement.quality"),
        "crc": theirs.integer("cgm.e2e_crc"),
    }
    if len(records) > 1 and ours["crc"] is None:
        # Quirk: the two bytes after the first record are labelled as its E2E-CRC.
        after = frame.value[ours["size"] : ours["size"] + 2]
        assert tshark.pop("crc") == int.from_bytes(after, "little")
        ours = {key: value for key, value in ours.items() if key != "crc"}
    return ours, tshark


def _crc_covered(frame: Frame) -> bytes:
    """The bytes the frame's E2E-CRC covers."""
    if frame.characteristic is gatt.MEASUREMENT:
        return frame.value[: frame.value[0] - 2]  # the first record
    return frame.value[:-2]


def _feature(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = frame.codec.fields(frame.value, frame.e2e_crc)
    ours = {key: ours[key] for key in ("features", "type", "location", "crc")}
    ours["type_location"] = ours["location"] << 4 | ours["type"]
    tshark = {
        "features": theirs.integer("cgm_feature.feature"),
        # Quirk: Wireshark 4.0 shows the nibbles swapped: its "type" is the high nibble (the
        # spec's location) and its "sample location" the low nibble (the spec's type).
        "type": theirs.integer("cgm.type_and_sample_location.sample_location"),
        "location": theirs.integer("cgm.type_and_sample_location.type"),
        "crc": theirs.integer("cgm.e2e_crc"),
        "type_location": theirs.integer("cgm.type_and_sample_location"),
    }
    return ours, tshark


def _status(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = frame.codec.fields(frame.value, frame.e2e_crc)
    ours["annunciation"] = ours["status"] | ours["cal_temp"] << 8 | ours["warning"] << 16
    tshark = {
        "time_offset": theirs.integer("cgm.time_offset"),
        "status": theirs.integer("cgm.sensor_status_annunciation.status"),
        "cal_temp": theirs.integer("cgm.sensor_status_annunciation.cal_temp"),
        "warning": theirs.integer("cgm.sensor_status_annunciation.warning"),
        "crc": theirs.integer("cgm.e2e_crc"),
        "annunciation": theirs.integer("cgm.status"),  # the 24-bit view: octet order on the wire
    }
    return ours, tshark


def _session_start_time(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = frame.codec.fields(frame.value, frame.e2e_crc)
    tshark = {
        **{
            name: theirs.integer(name)
            for name in ("year", "month", "day", "hours", "minutes", "seconds")
        },
        "time_zone": theirs.integer("timezone"),
        "dst": theirs.integer("dst_offset"),
        "crc": theirs.integer("cgm.e2e_crc"),
    }
    return ours, tshark


def _session_run_time(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = frame.codec.fields(frame.value, frame.e2e_crc)
    return ours, {
        "hours": theirs.integer("cgm.session_run_time"),
        "crc": theirs.integer("cgm.e2e_crc"),
    }


def _racp(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = frame.codec.fields(frame.value, frame.e2e_crc)
    operand = fields.pop("operand", None)
    # tshark names a filter's bounds: ">= x" is a minimum, "<= x" a maximum.
    bounds = {
        RacpOperator.GREATER_THAN_OR_EQUAL_TO: lambda: {"min": operand},
        RacpOperator.LESS_THAN_OR_EQUAL_TO: lambda: {"max": operand},
        RacpOperator.WITHIN_RANGE_OF: lambda: {"min": operand[0], "max": operand[1]},
    }
    if fields["operator"] in bounds and "filter_type" in fields:
        fields.update(bounds[fields["operator"]]())
    prefix = "record_access_control_point"
    tshark = {
        "opcode": theirs.integer(f"{prefix}.opcode"),
        "operator": theirs.integer(f"{prefix}.operator"),
        "filter_type": theirs.integer(f"{prefix}.operand.filter_type"),
        "min": theirs.integer(f"{prefix}_operand.min_time_offset"),
        "max": theirs.integer(f"{prefix}_operand.max_time_offset"),
        "number_of_records": theirs.integer(f"{prefix}_operand.number_of_records"),
        "request_opcode": theirs.integer(f"{prefix}.request_opcode"),
        "response_code": theirs.integer(f"{prefix}.response_code"),
        "crc": theirs.integer("cgm.e2e_crc"),  # RACP never carries one
    }
    return fields, {key: value for key, value in tshark.items() if value is not None}


def _socp(frame: Frame, theirs: Dissected) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = frame.codec.fields(frame.value, frame.e2e_crc)
    prefix = "cgm_specific_ops_control_point.operand"
    tshark: dict[str, Any] = {
        "opcode": theirs.integer("cgm_specific_ops_control_point.opcode"),
        "interval_min": theirs.integer(f"{prefix}.communication_interval"),
        "level": theirs.sfloat(f"{prefix}.alert_level"),
        "crc": theirs.integer("cgm.e2e_crc"),
    }
    rate = theirs.sfloat(f"{prefix}.alert_level_rate")  # rate levels have their own field
    if rate is not None:
        assert tshark["level"] is None
        tshark["level"] = rate
    record_number = theirs.integer(f"{prefix}.calibration_data_record_number")
    if theirs.get(f"{prefix}.calibration_glucose_concentration") is None:
        tshark["record_number"] = record_number
    else:
        tshark["calibration"] = {
            "glucose": theirs.sfloat(f"{prefix}.calibration_glucose_concentration"),
            "calibration_time": theirs.integer(f"{prefix}.calibration_time"),
            # Quirk: the type/location nibbles are shown swapped (see _feature).
            "type": theirs.integer("cgm.type_and_sample_location.sample_location"),
            "location": theirs.integer("cgm.type_and_sample_location.type"),
            "next_calibration_time": theirs.integer(f"{prefix}.next_calibration_time"),
            "record_number": record_number,
            "status": theirs.integer(f"{prefix}.calibration_status"),
        }
    return ours, {key: value for key, value in tshark.items() if value is not None}


COMPARE: dict[str, Callable[[Frame, Dissected], tuple[dict[str, Any], dict[str, Any]]]] = {
    gatt.MEASUREMENT.name: _measurement,
    gatt.FEATURE.name: _feature,
    gatt.STATUS.name: _status,
    gatt.SESSION_START_TIME.name: _session_start_time,
    gatt.SESSION_RUN_TIME.name: _session_run_time,
    gatt.RACP.name: _racp,
    gatt.SOCP.name: _socp,
}


# --- the tests ---


def test_tshark_is_installed():
    tshark.require()


def test_tshark_saw_exactly_the_frames_we_sent(dissected):
    sent = [(f.att_opcode, f.characteristic.uuid, f.value.hex(" ")) for f in FRAMES]
    seen = [(p.att_opcode, p.uuid, p.value.hex(" ")) for p in dissected]
    assert seen == sent


@pytest.mark.parametrize("index", range(len(FRAMES)), ids=[f.name for f in FRAMES])
def test_tshark_decodes_what_we_decode(index, dissected):
    assert len(dissected) == len(FRAMES)
    frame, theirs = FRAMES[index], dissected[index]
    assert (theirs.att_opcode, theirs.uuid, theirs.value) == (
        frame.att_opcode,
        frame.characteristic.uuid,
        frame.value,
    )
    # Our decoder gives back what we encoded...
    assert frame.decoded == frame.intent
    # ...tshark decodes the same values, without complaint...
    complaints = theirs.fields.get("_ws.expert.message", [])
    assert [text for text in complaints if text != BOGUS_SIZE_WARNING] == []
    ours, tshark = COMPARE[frame.characteristic.name](frame, theirs)
    assert tshark == ours
    # ...and every CRC on the wire is the spec's CRC-16/MCRF4XX.
    crc = ours.get("crc")
    if frame.characteristic is gatt.FEATURE and not frame.e2e_crc:
        assert crc == attributes.NO_CRC
    elif frame.e2e_crc:
        assert crc == independent_crc(_crc_covered(frame))
    else:
        assert crc is None
