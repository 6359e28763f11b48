import gc
import weakref

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firmware.transmitter.store import RecordStore
from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOperator as Op


def record(offset: int) -> MeasurementRecord:
    return MeasurementRecord(glucose=float(40 + offset % 360), time_offset=offset)


def store_of(*offsets: int, capacity: int = 100) -> RecordStore:
    store = RecordStore(capacity)
    for offset in offsets:
        store.append(record(offset))
    return store


def offsets(records) -> list[int]:
    return [r.time_offset for r in records]


ALL_OPERATIONS = [
    (Op.ALL_RECORDS, None),
    (Op.LESS_THAN_OR_EQUAL_TO, 10),
    (Op.GREATER_THAN_OR_EQUAL_TO, 10),
    (Op.WITHIN_RANGE_OF, (0, 0xFFFF)),
    (Op.FIRST_RECORD, None),
    (Op.LAST_RECORD, None),
]


@pytest.mark.parametrize(("operator", "operand"), ALL_OPERATIONS)
def test_an_empty_store_selects_nothing(operator, operand):
    store = RecordStore(5)
    assert store.select(operator, operand) == []
    assert store.count(operator, operand) == 0
    assert store.delete(operator, operand) == 0
    assert len(store) == 0
    assert list(store) == []
    assert store.latest() is None


STORED = (5, 10, 15, 20)


@pytest.mark.parametrize(
    ("operator", "operand", "expected"),
    [
        (Op.ALL_RECORDS, None, [5, 10, 15, 20]),
        (Op.LESS_THAN_OR_EQUAL_TO, 0, []),
        (Op.LESS_THAN_OR_EQUAL_TO, 4, []),
        (Op.LESS_THAN_OR_EQUAL_TO, 5, [5]),
        (Op.LESS_THAN_OR_EQUAL_TO, 14, [5, 10]),
        (Op.LESS_THAN_OR_EQUAL_TO, 15, [5, 10, 15]),
        (Op.LESS_THAN_OR_EQUAL_TO, 20, [5, 10, 15, 20]),
        (Op.LESS_THAN_OR_EQUAL_TO, 0xFFFF, [5, 10, 15, 20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 0, [5, 10, 15, 20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 5, [5, 10, 15, 20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 6, [10, 15, 20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 15, [15, 20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 20, [20]),
        (Op.GREATER_THAN_OR_EQUAL_TO, 21, []),
        (Op.WITHIN_RANGE_OF, (10, 15), [10, 15]),
        (Op.WITHIN_RANGE_OF, (9, 16), [10, 15]),
        (Op.WITHIN_RANGE_OF, (11, 14), []),
        (Op.WITHIN_RANGE_OF, (15, 15), [15]),
        (Op.WITHIN_RANGE_OF, (0, 4), []),
        (Op.WITHIN_RANGE_OF, (21, 0xFFFF), []),
        (Op.WITHIN_RANGE_OF, (0, 5), [5]),
        (Op.WITHIN_RANGE_OF, (20, 30), [20]),
        (Op.WITHIN_RANGE_OF, (0, 0xFFFF), [5, 10, 15, 20]),
        (Op.FIRST_RECORD, None, [5]),
        (Op.LAST_RECORD, None, [20]),
    ],
)
def test_each_operator_on_a_hand_built_store(operator, operand, expected):
    store = store_of(*STORED)
    assert offsets(store.select(operator, operand)) == expected
    assert store.select(operator, operand) == [record(offset) for offset in expected]
    assert store.count(operator, operand) == len(expected)
    assert len(store) == len(STORED)  # select and count remove nothing
    assert store.delete(operator, operand) == len(expected)
    assert offsets(store) == [offset for offset in STORED if offset not in expected]


def test_operators_arrive_as_plain_ints_from_frames():
    store = store_of(*STORED)
    assert offsets(store.select(3, 12)) == [15, 20]
    assert store.count(4, (5, 10)) == 2


def test_a_full_store_overwrites_the_oldest():
    store = store_of(1, 2, 3, capacity=3)
    store.append(record(4))
    assert offsets(store) == [2, 3, 4]
    store.append(record(9))
    assert offsets(store) == [3, 4, 9]
    assert len(store) == 3
    assert store.capacity == 3
    assert store.latest() == record(9)
    # dropped records are gone from every selection, not just from iteration
    assert store.select(Op.LESS_THAN_OR_EQUAL_TO, 3) == [record(3)]
    assert store.select(Op.FIRST_RECORD) == [record(3)]
    assert store.count(Op.ALL_RECORDS) == 3
    assert store.count(Op.WITHIN_RANGE_OF, (0, 2)) == 0
    for x in range(12):
        at_most = [o for o in (3, 4, 9) if o <= x]
        at_least = [o for o in (3, 4, 9) if o >= x]
        assert offsets(store.select(Op.LESS_THAN_OR_EQUAL_TO, x)) == at_most
        assert store.count(Op.LESS_THAN_OR_EQUAL_TO, x) == len(at_most)
        assert offsets(store.select(Op.GREATER_THAN_OR_EQUAL_TO, x)) == at_least
        assert store.count(Op.GREATER_THAN_OR_EQUAL_TO, x) == len(at_least)
    assert store.delete(Op.ALL_RECORDS) == 3
    assert store.latest() is None
    assert list(store) == []


class Tracked(MeasurementRecord):
    """A record that can be weakly referenced (MeasurementRecord has slots)."""


def test_overwritten_records_are_released():
    store = RecordStore(4)
    first = Tracked(glucose=100.0, time_offset=0)
    store.append(first)
    alive = weakref.ref(first)
    del first
    for offset in range(1, 3 * 4):
        store.append(record(offset))
    gc.collect()
    assert alive() is None, "the store still holds a record it dropped"
    assert offsets(store) == [8, 9, 10, 11]


def test_a_long_run_keeps_the_newest_capacity_records_in_order():
    store = RecordStore(288)  # 24 h at 5 min
    for offset in range(0, 5 * 3000, 5):
        store.append(record(offset))
    kept = list(range(5 * (3000 - 288), 5 * 3000, 5))
    assert offsets(store) == kept
    assert offsets(store.select(Op.GREATER_THAN_OR_EQUAL_TO, kept[10])) == kept[10:]
    assert offsets(store.select(Op.LESS_THAN_OR_EQUAL_TO, kept[10] - 1)) == kept[:10]
    assert store.select(Op.FIRST_RECORD) == [record(kept[0])]
    assert store.count(Op.WITHIN_RANGE_OF, (0, kept[0] - 1)) == 0


def test_capacity_one_holds_the_latest_record():
    store = RecordStore(1)
    for offset in (3, 4, 7):
        store.append(record(offset))
        assert list(store) == [record(offset)]
        assert store.select(Op.FIRST_RECORD) == store.select(Op.LAST_RECORD) == [record(offset)]


@pytest.mark.parametrize("capacity", [0, -1, 2.0, True])
def test_capacity_must_be_a_positive_int(capacity):
    with pytest.raises(ValueError, match="capacity"):
        RecordStore(capacity)


def test_capacity_is_read_only():
    store = RecordStore(4)
    with pytest.raises(AttributeError):
        store.capacity = 8  # type: ignore[misc]


def test_clear_starts_a_new_session():
    store = store_of(10, 20, 30, capacity=2)
    store.clear()
    assert len(store) == 0
    assert list(store) == []
    assert store.latest() is None
    assert store.count(Op.ALL_RECORDS) == 0
    store.append(record(0))  # offsets start over
    store.append(record(5))
    assert offsets(store) == [0, 5]


@pytest.mark.parametrize("offset", [20, 19, 0])
def test_offsets_must_strictly_increase(offset):
    store = store_of(10, 20)
    with pytest.raises(ValueError, match="time_offset"):
        store.append(record(offset))
    assert offsets(store) == [10, 20]  # a refused record leaves the store as it was
    assert store.latest() == record(20)


def test_offsets_keep_increasing_across_deletions():
    store = store_of(10, 20)
    store.delete(Op.ALL_RECORDS)
    with pytest.raises(ValueError, match="time_offset"):
        store.append(record(15))
    store.append(record(21))
    assert offsets(store) == [21]


@pytest.mark.parametrize("offset", [-1, 0x10000])
def test_offsets_must_fit_u16(offset):
    store = RecordStore(4)
    with pytest.raises(ValueError, match="u16"):
        store.append(record(offset))
    assert len(store) == 0


@pytest.mark.parametrize(
    ("operator", "operand"),
    [
        (Op.NULL, None),
        (7, None),
        (Op.ALL_RECORDS, 5),
        (Op.FIRST_RECORD, 0),
        (Op.LAST_RECORD, (1, 2)),
        (Op.LESS_THAN_OR_EQUAL_TO, None),
        (Op.LESS_THAN_OR_EQUAL_TO, (1, 2)),
        (Op.GREATER_THAN_OR_EQUAL_TO, -1),
        (Op.GREATER_THAN_OR_EQUAL_TO, 0x10000),
        (Op.GREATER_THAN_OR_EQUAL_TO, True),
        (Op.GREATER_THAN_OR_EQUAL_TO, 5.0),
        (Op.WITHIN_RANGE_OF, None),
        (Op.WITHIN_RANGE_OF, 5),
        (Op.WITHIN_RANGE_OF, (5,)),
        (Op.WITHIN_RANGE_OF, (1, 2, 3)),
        (Op.WITHIN_RANGE_OF, [1, 2]),
        (Op.WITHIN_RANGE_OF, (6, 5)),
        (Op.WITHIN_RANGE_OF, (-1, 5)),
        (Op.WITHIN_RANGE_OF, (0, 0x10000)),
    ],
)
def test_an_operand_that_does_not_fit_the_operator_is_misuse(operator, operand):
    store = store_of(*STORED)
    for method in (store.select, store.count, store.delete):
        with pytest.raises(ValueError):
            method(operator, operand)
    assert offsets(store) == list(STORED)


def test_delete_then_select():
    store = store_of(5, 10, 15, 20, 25, 30, capacity=6)
    assert store.delete(Op.WITHIN_RANGE_OF, (12, 22)) == 2
    assert offsets(store) == [5, 10, 25, 30]
    assert offsets(store.select(Op.GREATER_THAN_OR_EQUAL_TO, 10)) == [10, 25, 30]
    assert offsets(store.select(Op.WITHIN_RANGE_OF, (10, 25))) == [10, 25]
    assert store.delete(Op.FIRST_RECORD) == 1
    assert store.delete(Op.LAST_RECORD) == 1
    assert offsets(store) == [10, 25]
    assert store.latest() == record(25)
    # deleting made room: nothing is dropped until the store is full again
    for offset in (35, 40, 45, 50):
        store.append(record(offset))
    assert offsets(store) == [10, 25, 35, 40, 45, 50]
    store.append(record(55))
    assert offsets(store) == [25, 35, 40, 45, 50, 55]
    assert store.delete(Op.LESS_THAN_OR_EQUAL_TO, 40) == 3
    assert store.delete(Op.LESS_THAN_OR_EQUAL_TO, 40) == 0
    assert offsets(store.select(Op.ALL_RECORDS)) == [45, 50, 55]


def test_iteration_is_a_snapshot():
    store = store_of(1, 2, 3)
    records = iter(store)
    store.append(record(4))
    store.delete(Op.FIRST_RECORD)
    assert offsets(records) == [1, 2, 3]


# --- stateful: the store against a plain list ---------------------------------------------

OPERATORS = [op for op in Op if op is not Op.NULL]


class StoreMachine(RuleBasedStateMachine):
    """Random appends, deletions, clears and queries; the model is a list filtered by hand."""

    @initialize(capacity=st.integers(1, 8))
    def start(self, capacity):
        self.store = RecordStore(capacity)
        self.capacity = capacity
        self.model: list[MeasurementRecord] = []
        self.last: int | None = None  # highest offset appended this session

    def expected(self, operator, operand) -> list[MeasurementRecord]:
        model = self.model
        if operator is Op.ALL_RECORDS:
            return list(model)
        if operator is Op.LESS_THAN_OR_EQUAL_TO:
            return [r for r in model if r.time_offset <= operand]
        if operator is Op.GREATER_THAN_OR_EQUAL_TO:
            return [r for r in model if r.time_offset >= operand]
        if operator is Op.WITHIN_RANGE_OF:
            return [r for r in model if operand[0] <= r.time_offset <= operand[1]]
        if operator is Op.FIRST_RECORD:
            return model[:1]
        return model[-1:]

    def draw_query(self, data):
        operator = data.draw(st.sampled_from(OPERATORS), label="operator")
        near = sorted(
            {max(0, r.time_offset + delta) for r in self.model for delta in (-1, 0, 1)} | {0}
        )
        value = st.one_of(st.sampled_from(near), st.integers(0, 0xFFFF))
        if operator in (Op.LESS_THAN_OR_EQUAL_TO, Op.GREATER_THAN_OR_EQUAL_TO):
            operand = data.draw(value, label="operand")
        elif operator is Op.WITHIN_RANGE_OF:
            operand = tuple(sorted((data.draw(value), data.draw(value))))
        else:
            operand = None
        return operator, operand

    @rule(gap=st.integers(1, 40))
    def append(self, gap):
        offset = gap - 1 if self.last is None else self.last + gap
        self.store.append(record(offset))
        self.model.append(record(offset))
        del self.model[: -self.capacity]
        self.last = offset

    @precondition(lambda self: self.last is not None)
    @rule(back=st.integers(0, 40))
    def append_out_of_order(self, back):
        with pytest.raises(ValueError):
            self.store.append(record(max(0, self.last - back)))

    @rule(data=st.data())
    def select(self, data):
        operator, operand = self.draw_query(data)
        assert self.store.select(operator, operand) == self.expected(operator, operand)

    @rule(data=st.data())
    def count(self, data):
        operator, operand = self.draw_query(data)
        assert self.store.count(operator, operand) == len(self.expected(operator, operand))

    @rule(data=st.data())
    def delete(self, data):
        operator, operand = self.draw_query(data)
        doomed = self.expected(operator, operand)
        assert self.store.delete(operator, operand) == len(doomed)
        self.model = [r for r in self.model if r not in doomed]

    @rule()
    def clear(self):
        self.store.clear()
        self.model = []
        self.last = None

    @invariant()
    def same_records(self):
        assert list(self.store) == self.model
        assert len(self.store) == len(self.model)
        assert self.store.latest() == (self.model[-1] if self.model else None)


StoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40)
TestStoreAgainstModel = StoreMachine.TestCase
