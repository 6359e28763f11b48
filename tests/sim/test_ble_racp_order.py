"""Issue 13 defect 5: a collector may start its next RACP procedure the moment it has confirmed
the previous procedure's response indication (CGMS §3.6.3: the procedure is over once its
response is confirmed). Over the real bumble stack (``sim.links.ble``), the Handle Value
Confirmation and the next Write Request reach the sensor's host together, as they do when a
collector sends them in one connection event; the adapter must give the core the confirmation
(``Sent``) before the write, in the order they came, or the write is refused with ATT 0xFE
(Procedure Already In Progress).

The collector here is a bumble central whose GATT client sends the next RACP Write Request in
the same call as the confirmation, with nothing awaited in between, so the two PDUs travel the
in-process link back to back, every time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from bumble import att
from bumble.device import Peer
from bumble.gatt_client import CharacteristicProxy
from bumble.link import LocalLink

from firmware.events import SensorSample
from firmware.profiles import G7, MINUTE_MS
from firmware.transmitter.algorithm import FactoryCalibration
from firmware.transmitter.server import Transmitter, TransmitterConfig
from protocol.cgms import gatt, measurement
from protocol.cgms.racp import RacpOperator
from sim.links.ble import BleTransmitter, in_process_device, receiver_pairing, uuid16
from sim.virtual_loop import run_virtual

PASSKEY = 123_456
CAL = FactoryCalibration(770.0, 25_700.0)
TIMEOUT_S = 5.0  # virtual seconds
RECORDS = 6
COUNTS_120 = round(120 * CAL.sensitivity_counts_per_mgdl + CAL.background_counts)  # mg/dL


class BackToBack:
    """A collector's GATT client that, as it confirms a RACP response indication, writes its
    next queued RACP request (with response) at once: the Handle Value Confirmation and the
    Write Request leave in one go."""

    def __init__(self, peer: Peer, racp: CharacteristicProxy[bytes]) -> None:
        self.client, self.handle = peer.gatt_client, racp.handle
        self.queue: deque[bytes] = deque()
        self.written: list[tuple[bytes, asyncio.Future[att.ATT_PDU]]] = []
        self.waiting: asyncio.Future[att.ATT_PDU] | None = None  # our request's response
        confirm, receive = self.client.send_confirmation, self.client.on_gatt_pdu

        def send_confirmation(confirmation: att.ATT_Handle_Value_Confirmation) -> None:
            confirm(confirmation)
            if self.queue:
                self._write_now(self.queue.popleft())

        def on_gatt_pdu(pdu: att.ATT_PDU) -> None:
            if self.waiting is not None and pdu.op_code in att.ATT_RESPONSES:
                self.waiting.set_result(pdu)
                self.waiting = None
                return
            receive(pdu)

        self.client.send_confirmation = send_confirmation  # type: ignore[method-assign]
        self.client.on_gatt_pdu = on_gatt_pdu  # type: ignore[method-assign]

    def _write_now(self, value: bytes) -> None:
        """A Write Request sent in this very call, its response caught here (bumble's
        ``write_value`` would send it from a task, on a later turn of the loop; and its client
        may not yet have closed the previous request, whose response came just before)."""
        assert self.waiting is None, "a request is already outstanding"
        self.waiting = asyncio.get_running_loop().create_future()
        self.written.append((value, self.waiting))
        request = att.ATT_Write_Request(attribute_handle=self.handle, attribute_value=value)
        self.client.send_gatt_pdu(bytes(request))

    async def outcomes(self) -> list[tuple[str, str]]:
        """(request, "ok" or "ATT error 0xNN") for each request written back to back."""
        found = []
        for value, answer in self.written:
            pdu = await asyncio.wait_for(answer, TIMEOUT_S)
            ok = pdu.op_code == att.Opcode.ATT_WRITE_RESPONSE
            found.append((value.hex(), "ok" if ok else f"ATT error 0x{pdu.error_code:02X}"))
        return found


def test_a_racp_write_right_behind_the_confirmation_of_the_last_response_is_served() -> None:
    """Report All, then — each written as the previous response indication is confirmed —
    Report >=, Report within range, Report Last, Delete All and Report Number: every write is
    accepted (none refused 0xFE) and answered per CGMS §3.6.3."""

    async def main() -> None:
        link = LocalLink()
        clock = [0]
        core = Transmitter(TransmitterConfig(G7), CAL, 0)
        sensor = in_process_device(link, "sensor", "C0:CA:FE:00:00:01")
        server = BleTransmitter(sensor, core, lambda: clock[0], passkey=PASSKEY)
        await sensor.power_on()
        await server.start()
        first = (G7.warmup_ms + MINUTE_MS) // MINUTE_MS  # minutes
        for n in range(RECORDS):  # stored before the collector connects: no live notifications
            clock[0] = (first + 5 * n) * MINUTE_MS
            server.sample(SensorSample(COUNTS_120))
        offsets = [r.time_offset for r in core.store.select(RacpOperator.ALL_RECORDS)]
        assert len(offsets) == RECORDS

        collector = in_process_device(link, "collector", "E0:00:00:00:00:01")
        collector.pairing_config_factory = lambda connection: receiver_pairing(PASSKEY)
        await collector.power_on()
        connection = await asyncio.wait_for(collector.connect(sensor.random_address), TIMEOUT_S)
        await asyncio.wait_for(connection.pair(), TIMEOUT_S)
        peer = Peer(connection)
        await asyncio.wait_for(peer.discover_all(), TIMEOUT_S)

        def char(uuid: int) -> CharacteristicProxy[bytes]:
            (found,) = peer.get_characteristics_by_uuid(uuid16(uuid), uuid16(gatt.CGM_SERVICE))
            return found

        racp = char(gatt.RACP.uuid)
        records: list[tuple[int, int]] = []  # (procedure, time offset) of each record notified
        notifications = 0
        answers: list[bytes] = []
        answered = asyncio.Event()

        def on_records(value: bytes) -> None:
            nonlocal notifications
            notifications += 1
            records.extend((len(answers), r.time_offset) for r in measurement.decode(bytes(value)))

        def on_answer(value: bytes) -> None:
            answers.append(bytes(value))
            answered.set()

        await peer.subscribe(char(gatt.MEASUREMENT.uuid), on_records)
        await peer.subscribe(racp, on_answer, prefer_notify=False)
        collector_side = BackToBack(peer, racp)

        low, high = offsets[2].to_bytes(2, "little").hex(), offsets[4].to_bytes(2, "little").hex()
        back_to_back = [
            f"010301{low}",  # Report Stored Records, >= the third record's time offset
            f"010401{low}{high}",  # within the third's..the fifth's
            "0106",  # Last record
            "0201",  # Delete Stored Records, All
            "0401",  # Report Number of Stored Records, All
        ]
        collector_side.queue.extend(bytes.fromhex(h) for h in back_to_back)
        await asyncio.wait_for(peer.write_value(racp, b"\x01\x01", with_response=True), TIMEOUT_S)
        while len(answers) < 6:  # (a refused write ends the chain: then the check below says so)
            answered.clear()
            try:
                await asyncio.wait_for(answered.wait(), TIMEOUT_S)
            except TimeoutError:
                break

        assert await collector_side.outcomes() == [(h, "ok") for h in back_to_back]
        assert [a.hex() for a in answers] == [
            "06000101",  # Report All: Success
            "06000101",  # >=
            "06000101",  # range
            "06000101",  # Last
            "06000201",  # Delete All: Success
            "05000000",  # no records left
        ]
        reported = [[o for p, o in records if p == procedure] for procedure in range(4)]
        assert reported == [offsets, offsets[2:], offsets[2:5], offsets[-1:]]
        assert not core.store.select(RacpOperator.ALL_RECORDS)
        # one Sent per notification and per confirmed indication, none twice
        assert server.sent == notifications + len(answers)
        assert core.transfer is None and not core.in_flight

        # a confirmation with no indication pending gives nothing
        peer.gatt_client.send_gatt_pdu(bytes(att.ATT_Handle_Value_Confirmation()))
        assert await peer.read_value(char(gatt.FEATURE.uuid))  # a round trip behind it
        assert server.sent == notifications + len(answers)
        await server.stop()

    run_virtual(main())
