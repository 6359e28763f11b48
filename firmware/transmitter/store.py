"""The transmitter's record store: a ring of CGM Measurement records ordered by time offset.

The sensor keeps a bounded number of records and overwrites the oldest (CGMS v1.0.1 §3.9;
``spec/cgms.md``, "Error handling shared by the control points"). RACP (SPEC §3.6, ``spec/cgms.md``
"RACP") selects records with the time-offset filter: all, <=, >=, within range (inclusive),
first, last. Records arrive in strictly increasing time offset, so every selection is one
contiguous span, found by bisection in O(log n); reading it costs O(k).

Layout: two parallel lists (records, time offsets) whose live part starts at ``_start``.
Dropping the oldest record only advances ``_start``; the dead prefix is cut off once it is
longer than the live part, so appends stay amortised O(1). Deleting a span keeps the order.

Pure: no clock, I/O or randomness. Misuse (offsets out of order, an operand that does not fit
the operator) raises ``ValueError``; the CGMS server validates frames before it calls in.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from protocol.cgms.measurement import MeasurementRecord
from protocol.cgms.racp import RacpOperator

Operand = int | tuple[int, int] | None
U16_MAX = 0xFFFF


class RecordStore:
    """At most ``capacity`` records, oldest first, time offsets strictly increasing."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"record store capacity must be an int >= 1, got {capacity!r}")
        self._capacity = capacity
        self._records: list[MeasurementRecord] = []
        self._offsets: list[int] = []
        self._start = 0
        self._last_offset: int | None = None  # highest offset appended this session

    @property
    def capacity(self) -> int:
        return self._capacity

    def append(self, record: MeasurementRecord) -> None:
        """Store ``record``; when full, the oldest record is dropped.

        Time offsets must strictly increase within a session, also across deletions (a time
        offset is the record's sequence number, SPEC §3.1.1.4); :meth:`clear` starts over.
        """
        offset = record.time_offset
        if not 0 <= offset <= U16_MAX:
            raise ValueError(f"time_offset {offset} does not fit in u16")
        if self._last_offset is not None and offset <= self._last_offset:
            raise ValueError(
                f"time_offset {offset} does not follow the last one ({self._last_offset})"
            )
        self._last_offset = offset
        self._records.append(record)
        self._offsets.append(offset)
        if len(self._records) - self._start > self._capacity:
            self._start += 1
            if 2 * self._start > len(self._records):
                del self._records[: self._start]
                del self._offsets[: self._start]
                self._start = 0

    def clear(self) -> None:
        """Forget every record (a new session)."""
        self._records.clear()
        self._offsets.clear()
        self._start = 0
        self._last_offset = None

    def __len__(self) -> int:
        return len(self._records) - self._start

    def __iter__(self) -> Iterator[MeasurementRecord]:
        """The records, oldest first (a snapshot: the store may change meanwhile)."""
        return iter(self._records[self._start :])

    def latest(self) -> MeasurementRecord | None:
        return self._records[-1] if len(self) else None

    def select(self, operator: RacpOperator, operand: Operand = None) -> list[MeasurementRecord]:
        """The records an RACP operator with the time-offset filter selects, oldest first."""
        low, high = self._span(operator, operand)
        return self._records[low:high]

    def count(self, operator: RacpOperator, operand: Operand = None) -> int:
        """How many records :meth:`select` would return."""
        low, high = self._span(operator, operand)
        return high - low

    def delete(self, operator: RacpOperator, operand: Operand = None) -> int:
        """Remove the records :meth:`select` would return; how many were removed."""
        low, high = self._span(operator, operand)
        del self._records[low:high]
        del self._offsets[low:high]
        return high - low

    def _span(self, operator: RacpOperator, operand: Operand) -> tuple[int, int]:
        """``[low, high)`` indices into the lists of the records selected."""
        operator = RacpOperator(operator)
        start, end = self._start, len(self._offsets)
        offsets = self._offsets
        if operator in (
            RacpOperator.ALL_RECORDS,
            RacpOperator.FIRST_RECORD,
            RacpOperator.LAST_RECORD,
        ):
            if operand is not None:
                raise ValueError(f"RACP operator {operator.name} takes no operand, got {operand!r}")
            if operator is RacpOperator.ALL_RECORDS or start == end:
                return start, end
            return (start, start + 1) if operator is RacpOperator.FIRST_RECORD else (end - 1, end)
        if operator is RacpOperator.LESS_THAN_OR_EQUAL_TO:
            return start, bisect_right(offsets, _u16(operator, operand), start, end)
        if operator is RacpOperator.GREATER_THAN_OR_EQUAL_TO:
            return bisect_left(offsets, _u16(operator, operand), start, end), end
        if operator is RacpOperator.WITHIN_RANGE_OF:
            if not isinstance(operand, tuple) or len(operand) != 2:
                raise ValueError(f"WITHIN_RANGE_OF takes (minimum, maximum), got {operand!r}")
            minimum, maximum = (_u16(operator, value) for value in operand)
            if minimum > maximum:
                raise ValueError(f"WITHIN_RANGE_OF: minimum {minimum} above maximum {maximum}")
            low = bisect_left(offsets, minimum, start, end)
            return low, bisect_right(offsets, maximum, low, end)
        raise ValueError(f"RACP operator {operator.name} selects no records")


def _u16(operator: RacpOperator, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U16_MAX:
        raise ValueError(f"RACP operator {operator.name}: operand {value!r} is not a u16 offset")
    return value
