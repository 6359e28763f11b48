"""A live receiver screen: what a CGM receiver shows, on a terminal.

The current value (or what replaces it: warm-up, signal loss, sensor issue, sensor failed,
replace sensor, ``---``; ``LOW``/``HIGH`` outside 40-400 mg/dL) with its trend arrow and age,
the phase's countdown (warm-up remaining, time to expiry, grace remaining), the last 3 hours as
a graph with the target band, the active alerts (most urgent first, acknowledged or not) and the
link and pairing state. Every display rule is the receiver core's (``Receiver.showing``,
``Receiver.phase_left_ms``, ``AlertEngine.by_urgency``, ``firmware.receiver.display``); this
package lays it out and reads the keyboard.

- ``view``: pure: ``View.render(now_ms, receiver, link, cols, rows)`` -> lines of text.
- ``terminal``: ``Screen`` draws in place with ANSI sequences; ``Keys`` reads keys without
  blocking (cbreak mode, restored on exit and on Ctrl-C).
- ``paced``: ``cgmsim simulate --display --speed N`` (``PacedSession``).

Using it from a receiver driver (e.g. ``cgmsim receiver --display``)::

    with Keys(sys.stdin.fileno()) as keys, Screen(sys.stdout, keys, title="cgmsim g7") as screen:
        ...  # every ~0.1-0.5 s of wall time, and after the core's events:
        for alert in screen.update(now_ms, core, LinkState("usb:0", connected, paired), records):
            core.acknowledge(alert, now_ms)  # and record it (bookkeeping.AlertAcknowledged)

``records`` are the core's events since the last update as events.jsonl records
(``sim.session.bookkeeping.event_json``); a resumed receiver may pass its store's history first
(``DurableReceiver.history()``) so the graph has the last 3 hours at once. ``update`` returns
the alerts the acknowledge key (``a``) asked for; the screen never changes the core itself.
"""

from sim.screen.terminal import Keys, Screen
from sim.screen.view import LinkState, View

__all__ = ["Keys", "LinkState", "Screen", "View"]
