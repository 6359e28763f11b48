"""What a target's actions may hold, checked before a reproducer is played.

A reproducer is input like any other (shared/design/cli.md): an action the target does not
know, a payload without its ``hex:`` prefix or with bad hex, a characteristic the link does not
have, are refused with one line naming the field (``actions[3][2]``), never played (a skipped
action would make a reproducer pass while the defect is still there, and the harness's own
``ValueError`` on bad hex is no finding in the target).

A target's table maps an action's first item (its kind, or a codec name for the decoder) to
one checker per further item. A checker returns what is wrong with a value, or None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

Check = Callable[[Any], str | None]
Table = Mapping[str, Sequence[Check]]


class ActionError(ValueError):
    """An action a target cannot play; the message names the field."""


def hex_value(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("hex:"):
        return f"{value!r} is not a hex:<bytes> payload"
    try:
        bytes.fromhex(value[4:])
    except ValueError:
        return f"{value!r} is not valid hex"
    return None


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{value!r} is not an integer in {low}..{high}"
        return None

    return check


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def optional_flag(value: Any) -> str | None:
    return (
        None
        if value is None or isinstance(value, bool)
        else f"{value!r} is not true, false or null"
    )


def one_of(choices: Iterable[Any], what: str) -> Check:
    allowed = tuple(choices)

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or value not in allowed:
            shown = ", ".join(f"0x{c:04X}" if isinstance(c, int) else str(c) for c in allowed)
            return f"{value!r} is not a {what} ({shown})"
        return None

    return check


UINT16 = integer(0, 0xFFFF)
MILLISECONDS = integer(0, 2**31)


def check_actions(actions: Any, table: Table, kind_name: str = "action") -> None:
    """Raise :class:`ActionError` naming the first field of ``actions`` that ``table`` refuses."""
    if not isinstance(actions, list):
        raise ActionError("actions: not a list")
    for index, action in enumerate(actions):
        if not isinstance(action, list) or not action:
            raise ActionError(f"actions[{index}]: {action!r} is not a non-empty list")
        kind = action[0]
        if not isinstance(kind, str) or kind not in table:
            known = ", ".join(sorted(table))
            raise ActionError(f"actions[{index}][0]: unknown {kind_name} {kind!r} (one of {known})")
        checks = table[kind]
        if len(action) != 1 + len(checks):
            raise ActionError(
                f"actions[{index}]: {kind} takes {len(checks)} values, not {len(action) - 1}"
            )
        for slot, (check, value) in enumerate(zip(checks, action[1:], strict=True), 1):
            problem = check(value)
            if problem is not None:
                raise ActionError(f"actions[{index}][{slot}]: {problem}")
