"""Recorded traces as reference glucose: CSV and Nightscout files written to disk, resampled
values worked out by hand in the comments, and every malformed input rejected with one line
that names the file and the place."""

import dataclasses
import datetime as dt
import json
import time

import numpy as np
import pytest

from sim.signal.traces import Trace, TraceError, load_trace

NAN = np.nan


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_resampled_by_linear_interpolation(tmp_path):
    path = write(tmp_path, "trace.csv", "time_offset_min,glucose_mgdl\n0,100\n7,121\n20,95\n")
    trace = load_trace(path)
    assert trace.name == "trace:trace.csv"
    assert trace.source == str(path)
    assert trace.duration_min == 20.0
    np.testing.assert_array_equal(trace.time_min, [0, 7, 20])
    np.testing.assert_array_equal(trace.glucose_mgdl, [100, 121, 95])
    # 0 -> 100; 5 -> 100 + 21·5/7 = 115; 10 -> 121 - 26·3/13 = 115; 15 -> 121 - 26·8/13 = 105;
    # 20 -> 95 (the last reading); 25 -> after the trace: NaN
    np.testing.assert_allclose(trace.resample(6), [100, 115, 115, 105, 95, NAN])


def test_csv_extra_columns_any_order_blank_lines_bom_crlf(tmp_path):
    text = (
        "\ufeff\r\n"
        " note , glucose_mgdl ,time_offset_min\r\n"
        "breakfast, 100 ,0\r\n"
        "\r\n"
        ",,\r\n"
        '"long, quoted",140,10\r\n'
        "   \r\n"
    )
    trace = load_trace(write(tmp_path, "export.txt", text))
    np.testing.assert_array_equal(trace.time_min, [0, 10])
    np.testing.assert_array_equal(trace.glucose_mgdl, [100, 140])
    np.testing.assert_allclose(trace.resample(3), [100, 120, 140])


def test_gap_longer_than_limit_is_nan_but_its_ends_are_kept(tmp_path):
    text = "time_offset_min,glucose_mgdl\n0,100\n10,120\n50,200\n55,210\n"
    trace = load_trace(write(tmp_path, "gap.csv", text))
    # 0-10: 5 -> 110. 10-50 is a 40-min gap (> 30): 15..45 NaN, 10 and 50 are readings.
    expected = [100, 110, 120, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 200, 210, NAN]
    np.testing.assert_allclose(trace.resample(13), expected)
    # The limit is a field: with 40 allowed, 25 -> 120 + 80·15/40 = 150
    wider = dataclasses.replace(trace, max_gap_min=40.0)
    assert wider.resample(13)[5] == pytest.approx(150.0)
    assert not np.isnan(wider.resample(12)).any()


def test_gap_of_exactly_the_limit_is_interpolated(tmp_path):
    trace = load_trace(write(tmp_path, "t.csv", "time_offset_min,glucose_mgdl\n0,100\n30,160\n"))
    # 30 is not longer than 30: 5 -> 110, ..., 25 -> 150
    np.testing.assert_allclose(trace.resample(7), [100, 110, 120, 130, 140, 150, 160])


def test_times_before_the_first_reading_are_nan(tmp_path):
    text = "time_offset_min,glucose_mgdl\n12,100\n17,150\n22.5,150\n"
    trace = load_trace(write(tmp_path, "late.csv", text))
    assert trace.duration_min == pytest.approx(10.5)
    # 0, 5, 10 before 12: NaN; 15 -> 100 + 50·3/5 = 130; 20 -> 150; 25 after 22.5: NaN
    np.testing.assert_allclose(trace.resample(6), [NAN, NAN, NAN, 130, 150, NAN])


# --------------------------------------------------------------------------------------------
# Nightscout

T0 = dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC)


def ns_entry(minutes, oid, sgv=None, *, kind="sgv", date=True, extra=None):
    stamp = T0 + dt.timedelta(minutes=minutes)
    entry = {
        "_id": f"65e18a{oid:018x}",
        "device": "xDrip-DexcomG6",
        "dateString": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sysTime": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "utcOffset": 60,
    }
    if date:
        entry["date"] = int(stamp.timestamp() * 1000)
    if kind is not None:
        entry["type"] = kind
    if sgv is not None:
        entry |= {"sgv": sgv, "direction": "Flat", "noise": 1, "filtered": 0, "unfiltered": 0}
    return entry | (extra or {})


def nightscout_export():
    """Newest first, as Nightscout exports; readings at 0, 4.5, 9.5, 14.5, 19.5 min."""
    return [
        ns_entry(19.5, 9, 130, extra={"direction": "FortyFiveUp"}),
        # a fingerstick; its uploader copied the meter value into sgv: only the type excludes it
        ns_entry(17.0, 8, kind="mbg", extra={"mbg": 60, "sgv": 60}),
        ns_entry(14.5, 7, 118),
        ns_entry(9.5, 6, 112),
        ns_entry(9.5, 5, 113),  # the same reading uploaded twice: the first one wins
        ns_entry(4.5, 4, 105, kind=None, date=False),  # no type, dateString only
        ns_entry(3.0, 3, kind="cal", extra={"slope": 850.0, "intercept": 30000, "scale": 1}),
        ns_entry(0.0, 2, 100),
        ns_entry(-10.0, 1, kind="mbg", extra={"mbg": 95}),  # earliest of all, still ignored
    ]


def test_nightscout_export(tmp_path):
    path = write(tmp_path, "entries.json", json.dumps(nightscout_export(), indent=2))
    trace = load_trace(path)
    assert trace.name == "trace:entries.json"
    np.testing.assert_allclose(trace.time_min, [0, 4.5, 9.5, 14.5, 19.5])
    np.testing.assert_array_equal(trace.glucose_mgdl, [100, 105, 112, 118, 130])
    # 0 -> 100; 5 -> 105 + 7·0.5/5 = 105.7; 10 -> 112 + 6·0.1 = 112.6;
    # 15 -> 118 + 12·0.1 = 119.2; 20 after 19.5: NaN
    np.testing.assert_allclose(trace.resample(5), [100, 105.7, 112.6, 119.2, NAN])


@pytest.fixture
def local_time_utc_minus_5(monkeypatch):
    """A local zone other than UTC (POSIX rule, needs no tzdata), restored afterwards."""
    monkeypatch.setenv("TZ", "EST+5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_utc_minus_5")
def test_nightscout_datestring_with_zone_offset(tmp_path):
    entries = [
        {"sgv": 150, "dateString": "2024-03-01T09:10:00+01:00"},  # 08:10 UTC
        {"sgv": 140, "type": "sgv", "dateString": "2024-03-01T08:00:00"},  # no zone: UTC
    ]
    trace = load_trace(write(tmp_path, "ns.json", json.dumps(entries)))
    np.testing.assert_allclose(trace.time_min, [0, 10])
    np.testing.assert_array_equal(trace.glucose_mgdl, [140, 150])


def test_format_is_told_by_content_not_extension(tmp_path):
    as_csv = load_trace(write(tmp_path, "a.json", "time_offset_min,glucose_mgdl\n0,90\n5,95\n"))
    as_json = load_trace(write(tmp_path, "b.csv", "\n  " + json.dumps(nightscout_export())))
    np.testing.assert_array_equal(as_csv.glucose_mgdl, [90, 95])
    np.testing.assert_array_equal(as_json.glucose_mgdl, [100, 105, 112, 118, 130])


# --------------------------------------------------------------------------------------------
# The stream


def gappy_trace(tmp_path):
    rows = [(3, 80), (11, 95.5), (18, 140), (60, 180), (63, 176), (100, 120), (128, 101)]
    text = "time_offset_min,glucose_mgdl\n" + "".join(f"{t},{g}\n" for t, g in rows)
    return load_trace(write(tmp_path, "gappy.csv", text))


def test_stream_gives_every_patient_the_resampled_trace(tmp_path):
    trace = gappy_trace(tmp_path)
    stream = trace.start(3, 30, np.random.default_rng(0))
    chunk = stream.next(30)
    assert chunk.shape == (3, 30)
    expected = trace.resample(30)
    for row in chunk:
        np.testing.assert_array_equal(row, expected)
    # 0 before the first reading (3): NaN; 5 -> 80 + 15.5·2/8; 15 -> 95.5 + 44.5·4/7;
    # 20..55 inside the 42-min gap 18-60: NaN; 60 -> 180; 65..95 inside the 37-min gap 63-100:
    # NaN; 100 -> 120; 125 -> 120 - 19·25/28; 130 after the last reading (128): NaN
    assert np.isnan(chunk[0, 0])
    assert chunk[0, 1] == pytest.approx(80 + 15.5 * 2 / 8)
    assert chunk[0, 3] == pytest.approx(95.5 + 44.5 * 4 / 7)
    assert np.isnan(chunk[0, 4:12]).all() and np.isnan(chunk[0, 13:20]).all()
    assert chunk[0, 12] == 180 and chunk[0, 20] == 120
    assert chunk[0, 25] == pytest.approx(120 - 19 * 25 / 28)
    assert np.isnan(chunk[0, 26:]).all()


@pytest.mark.parametrize("sizes", [[1] * 40, [7, 13, 0, 20], [39, 1], [3, 37]])
def test_stream_is_chunk_size_independent(tmp_path, sizes):
    trace = gappy_trace(tmp_path)
    whole = trace.start(2, 40, np.random.default_rng(1)).next(40)
    stream = trace.start(2, 40, np.random.default_rng(2))
    pieces = np.concatenate([stream.next(size) for size in sizes], axis=1)
    np.testing.assert_array_equal(pieces, whole)


def test_stream_past_the_planned_samples_continues_the_same_grid(tmp_path):
    trace = gappy_trace(tmp_path)
    stream = trace.start(1, 10, np.random.default_rng(0))
    got = np.concatenate([stream.next(8), stream.next(20)], axis=1)
    np.testing.assert_array_equal(got[0], trace.resample(28))


def test_chunks_are_independent_copies(tmp_path):
    trace = gappy_trace(tmp_path)
    stream = trace.start(2, 10, np.random.default_rng(0))
    chunk = stream.next(5)
    chunk[0] = 0.0
    np.testing.assert_array_equal(chunk[1], trace.resample(5))
    np.testing.assert_array_equal(stream.next(5)[0], trace.resample(10)[5:])


def test_trace_copies_its_input_and_checks_it():
    time, glucose = np.array([0.0, 5.0]), np.array([100.0, 110.0])
    trace = Trace(time, glucose, "manual")
    time[0], glucose[0] = 3.0, 500.0
    assert trace.time_min[0] == 0.0 and trace.glucose_mgdl[0] == 100.0
    assert not (trace.time_min.flags.writeable or trace.glucose_mgdl.flags.writeable)
    assert trace.name == "trace:manual"


@pytest.mark.parametrize(
    ("time", "glucose"),
    [
        ([0.0, 5.0, 5.0], [100.0, 110.0, 120.0]),  # not strictly increasing
        ([-1.0, 5.0], [100.0, 110.0]),  # negative
        ([0.0, 5.0], [100.0]),  # lengths differ
        ([], []),  # empty
        ([0.0, 5.0], [100.0, np.nan]),  # not finite
    ],
)
def test_trace_rejects_bad_arrays(time, glucose):
    with pytest.raises(TraceError, match=r"^manual: need non-empty"):
        Trace(np.array(time), np.array(glucose), "manual")


def test_drives_the_sensor_chain(tmp_path):
    from sim.signal.sensor import Artefacts, SensorArray, SensorModel

    text = "time_offset_min,glucose_mgdl\n0,100\n25,150\n50,200\n75,175\n100,150\n"
    trace = load_trace(write(tmp_path, "ideal.csv", text))
    model = SensorModel("ideal", artefacts=Artefacts.none())
    chunks = list(SensorArray(model, trace, 2, 21, seed=1).chunks(6))
    reference = np.concatenate([c.reference_mgdl for c in chunks], axis=1)
    sensor = np.concatenate([c.sensor_mgdl for c in chunks], axis=1)
    # 5 -> 110, ..., 55 -> 195, ...: no NaN anywhere on this grid
    expected = np.repeat(trace.resample(21)[None], 2, axis=0)
    assert not np.isnan(expected).any()
    np.testing.assert_array_equal(reference, expected)
    assert reference[1, 11] == pytest.approx(195.0)
    np.testing.assert_allclose(sensor, reference)


# --------------------------------------------------------------------------------------------
# Errors: one line, naming the file and the line (CSV) or entry (JSON)

HEADER = "time_offset_min,glucose_mgdl\n"

CSV_ERRORS = {
    "empty": ("", "empty file"),
    "blank only": ("\n  \n\n", "empty file"),
    "header only": (HEADER + "\n", "no readings after the header"),
    "no glucose column": ("time_offset_min,sgv\n0,100\n", "line 1: header lacks glucose_mgdl"),
    "no header": ("0,100\n5,110\n", "line 1: header lacks time_offset_min, glucose_mgdl"),
    "bad glucose": (
        HEADER + "0,100\n\n5,110\n10,abc\n",
        "line 5: glucose_mgdl 'abc' is not a number",
    ),
    "empty glucose": (HEADER + "0,100\n5,\n", "line 3: glucose_mgdl '' is not a number"),
    "nan glucose": (HEADER + "0,nan\n", "line 2: glucose_mgdl 'nan' is not a number"),
    "bad time": (HEADER + "0,100\n5 min,110\n", "line 3: time_offset_min '5 min' is not a number"),
    "negative time": (HEADER + "-5,100\n", "line 2: time_offset_min -5 is negative"),
    "repeated time": (
        HEADER + "0,100\n5,110\n5,111\n",
        "line 4: time_offset_min 5 is not after 5 (line 3)",
    ),
    "decreasing time": (
        HEADER + "0,100\n10,110\n\n5,111\n",
        "line 5: time_offset_min 5 is not after 10 (line 3)",
    ),
    "too low": (HEADER + "0,100\n5,9.9\n", "line 3: glucose_mgdl '9.9' is outside 10-1000 mg/dL"),
    "too high": (HEADER + "0,1001\n", "line 2: glucose_mgdl '1001' is outside 10-1000 mg/dL"),
    "short row": (HEADER + "0,100\n5\n", "line 3: 1 columns, the header has 2"),
}


@pytest.mark.parametrize("case", CSV_ERRORS)
def test_csv_errors(tmp_path, case):
    text, message = CSV_ERRORS[case]
    path = write(tmp_path, "trace.csv", text)
    with pytest.raises(TraceError) as raised:
        load_trace(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_glucose_limits_are_inclusive(tmp_path):
    trace = load_trace(write(tmp_path, "t.csv", HEADER + "0,10\n5,1000\n"))
    np.testing.assert_array_equal(trace.glucose_mgdl, [10, 1000])


def good(minutes, sgv=120):
    return ns_entry(minutes, int(minutes * 10), sgv)


JSON_ERRORS = {
    "malformed": ('[\n  {"sgv": 100,\n   "date" 1}\n]', "line 3 column 11: malformed JSON"),
    "truncated": ('[{"sgv": 100, "date": 1}', "line 1 column 25: malformed JSON"),
    "not an array": ('{"sgv": 100, "date": 1}', "expected a JSON array of Nightscout entries"),
    "empty array": ("[]", "no sgv entries"),
    "only fingersticks": (
        json.dumps([ns_entry(0, 1, kind="mbg", extra={"mbg": 90})]),
        "no sgv entries",
    ),
    "not an object": (json.dumps([good(5), 42]), "entry 1: not a JSON object"),
    "sgv text": (json.dumps([good(5), good(0, "abc")]), "entry 1: sgv 'abc' is not a number"),
    "sgv bool": (json.dumps([good(0, True)]), "entry 0: sgv True is not a number"),
    "sgv too low": (json.dumps([good(10), good(5, 5), good(0)]), "entry 1: sgv 5 is outside"),
    "sgv too high": (json.dumps([good(5, 1200), good(0)]), "entry 0: sgv 1200 is outside"),
    "bad date": (
        json.dumps([good(5), {**good(0), "date": "yesterday"}]),
        "entry 1: date 'yesterday' is not a number",
    ),
    "no time": (
        json.dumps([{"sgv": 100, "type": "sgv"}]),
        "entry 0: neither date nor dateString",
    ),
    "bad dateString": (
        json.dumps([good(5), {"sgv": 100, "dateString": "Fri Mar 01 2024"}]),
        "entry 1: dateString 'Fri Mar 01 2024' is not ISO 8601",
    ),
}


@pytest.mark.parametrize("case", JSON_ERRORS)
def test_nightscout_errors(tmp_path, case):
    text, message = JSON_ERRORS[case]
    path = write(tmp_path, "entries.json", text)
    with pytest.raises(TraceError) as raised:
        load_trace(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(TraceError, match=r"nowhere\.csv: no such file$"):
        load_trace(path)


def test_trace_error_is_a_value_error():
    assert issubclass(TraceError, ValueError)
