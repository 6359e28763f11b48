"""The collector's procedure is one table, ``TRANSITIONS``: walked here pair by pair, as the
transmitter's is (tests/firmware/test_transmitter.py). Every (state, input) pair is either a
listed transition, which leaves the collector in one of the states it lists, or not allowed:
ignored, counted in ``stray_inputs``, nothing said and nothing changed."""

from __future__ import annotations

import datetime

import pytest

from firmware.profiles import MINUTE_MS
from firmware.receiver.collector import (
    TRANSITIONS,
    Collector,
    CollectorConfig,
    Input,
    ReadRequest,
    State,
    WriteRequest,
)
from protocol.cgms import attributes, gatt, measurement, racp, socp
from protocol.cgms.attributes import Feature, Status
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOpcode, RacpResponseCode

NOW = 60 * MINUTE_MS
RACP, SOCP = gatt.RACP.uuid, gatt.SOCP.uuid
ANSWERED_BY = {  # what a state's request in flight is, and the value answering it
    State.READ_FEATURE: (ReadRequest(gatt.FEATURE.uuid), attributes.encode_feature(Feature(0))),
    State.READ_STATUS: (ReadRequest(gatt.STATUS.uuid), attributes.STATUS_CODEC.encode(Status(60))),
    State.CHECK_STATUS: (
        ReadRequest(gatt.STATUS.uuid),
        attributes.STATUS_CODEC.encode(Status(60)),
    ),
}
WRITE = WriteRequest(RACP, b"\x01\x01")


def in_state(state: State) -> Collector:
    """A collector in ``state`` with records 0-50 received but 20 and 25 (the holes)."""
    collector = Collector(CollectorConfig(datetime.datetime(2025, 1, 1)))
    collector.state = state
    collector.status = Status(60)
    collector.seen = {t for t in range(0, 55, 5) if t not in (20, 25)}
    collector.last_offset = 50
    if state is State.COUNT_HOLES:
        collector.holes = (20, 25)
    return collector


def racp_indication(frame: racp.RacpFrame) -> tuple[int, bytes]:
    return RACP, racp.encode(frame)


INDICATIONS = {
    Input.SOCP_INDICATION: (
        SOCP,
        socp.encode(socp.response(socp.SocpOpcode.START_SESSION, socp.SocpResponseCode.SUCCESS)),
    ),
    Input.RECORD_COUNT: racp_indication(racp.number_of_records(0)),
    Input.COUNT_REFUSED: racp_indication(
        racp.response(
            RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS, RacpResponseCode.OPERATOR_NOT_SUPPORTED
        )
    ),
    Input.REPORT_DONE: racp_indication(
        racp.response(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
    ),
    Input.REPORT_FAILED: racp_indication(
        racp.response(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
    ),
}


def feed(collector: Collector, kind: Input) -> None:
    """Give ``collector`` the input ``kind`` through its public interface."""
    match kind:
        case Input.CONNECT:
            collector.connected(NOW)
        case Input.DISCONNECT:
            collector.disconnected(NOW)
        case Input.CHECK:
            collector.check(NOW)
        case Input.ANSWER:
            request, value = ANSWERED_BY.get(collector.state, (WRITE, None))
            collector.pending = request
            collector.response(request.uuid, value, None, NOW)
        case Input.ATT_ERROR | Input.BUSY:
            collector.pending = WRITE
            error = 0xFE if kind is Input.BUSY else 0x03
            collector.response(RACP, None, error, NOW)
        case Input.RETRY:
            collector.retry, collector.retry_at_ms = WRITE, NOW
            collector.handle_timer(NOW)
        case Input.TIMEOUT:
            collector.deadline_ms = NOW
            collector.handle_timer(NOW)
        case Input.MEASUREMENT:
            value = measurement.encode([MeasurementRecord(120.0, 55)])
            collector.notification(gatt.MEASUREMENT.uuid, value, NOW)
        case _:
            uuid, value = INDICATIONS[kind]
            collector.indication(uuid, value, NOW)


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", list(Input))
def test_every_state_input_pair_follows_the_table(state, kind):
    collector = in_state(state)
    feed(collector, kind)
    transition = TRANSITIONS.get((state, kind))
    if transition is None:  # not allowed: ignored
        assert collector.state is state
        assert collector.stray_inputs == 1
        assert collector.next_event() is None
    else:
        assert collector.state in transition.to
        assert collector.stray_inputs == 0
    assert collector.frame_errors == 0  # every input above decodes


def test_every_transition_runs_an_action_and_every_state_is_reached():
    for transition in TRANSITIONS.values():
        assert callable(getattr(Collector, transition.action, None)), transition.action
    reached = {state for transition in TRANSITIONS.values() for state in transition.to}
    assert reached == set(State)


def test_a_link_comes_and_goes_in_any_state():
    for state in State:
        assert TRANSITIONS[(state, Input.CONNECT)].to == {State.READ_FEATURE}
        assert TRANSITIONS[(state, Input.DISCONNECT)].to == {State.DISCONNECTED}


def test_racp_answers_count_only_in_the_state_that_asked():
    """An unsolicited RACP answer (a rogue or repeating sensor) moves nothing."""
    for kind in (Input.RECORD_COUNT, Input.COUNT_REFUSED, Input.REPORT_DONE, Input.REPORT_FAILED):
        asked = {state for state, input_ in TRANSITIONS if input_ is kind}
        assert asked <= {State.COUNT_ALL, State.COUNT_HOLES, State.COUNT_TAIL, State.REPORT}
        assert (State.LIVE, kind) not in TRANSITIONS
        assert (State.DISCONNECTED, kind) not in TRANSITIONS


def test_only_a_transfer_or_a_count_times_out():
    timing_out = {state for state, kind in TRANSITIONS if kind is Input.TIMEOUT}
    assert timing_out == {State.COUNT_ALL, State.COUNT_HOLES, State.COUNT_TAIL, State.REPORT}
    assert all(TRANSITIONS[(s, Input.TIMEOUT)].to == {State.FAILED} for s in timing_out)
