"""Finding the BLE controllers attached: ``cgmsim dongles`` and ``--transport auto``.

Candidates come from two listings, each with the exact bumble transport string to pass:

- serial ports with a USB vendor and product ID (pyserial's ``serial.tools.list_ports``):
  ``serial:<device>,1000000,rtscts``, the UART settings of Zephyr's HCI UART sample (1 Mbit/s,
  8N1, hardware flow control: zephyr ``samples/bluetooth/hci_uart/README.rst``). Ports without
  a USB ID (a PC's own ``/dev/ttyS*``) are not dongles and are left out.
- USB HCI controllers (USB class Wireless Controller / RF / Bluetooth, as bumble's
  ``bumble.apps.usb_probe`` tells them): ``usb:<n>``, the n-th such device, bumble's own
  numbering (``bumble.transport.usb``). Without libusb or a USB bus there are none.

Extra candidates can be named in ``CGMSIM_DONGLES`` (transport strings separated by ``;``),
or with ``cgmsim dongles --candidate T``: pseudo-terminals (a virtual controller from ``python
-m bumble.apps.controllers pty:…``), TCP bridges and such that no listing shows.

Each candidate is asked whether it answers HCI Reset (Core Vol 4 Part E 7.3.2: a Command
Complete event for opcode 0x0C03 with status Success) within ``RESET_TIMEOUT_S``.
``resolve_transport("auto")`` picks the only candidate that answers and says which on stderr;
none or several is one line naming them (``DongleProblem``, exit 2). Any other spec is
returned as given.

Known USB IDs (``KNOWN_USB_IDS``) name what a port probably is; a port with another ID is
listed all the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import click

ENV_CANDIDATES = "CGMSIM_DONGLES"
SERIAL_SETTINGS = "1000000,rtscts"
RESET_TIMEOUT_S = 2.0
#: USB vendor:product IDs of HCI firmware. Zephyr's project VID 0x2FE3: PID 0x0100 is its USB
#: device stack's default (zephyr subsys/usb/CMakeLists.txt, Kconfig USB_DEVICE_PID), which
#: the HCI UART sample on the nRF52840 Dongle enumerates with (its UART is USB CDC ACM);
#: PID 0x000B is the HCI USB sample (zephyr doc/connectivity/usb/device_next/vid_pid.rst).
KNOWN_USB_IDS = {
    (0x2FE3, 0x0100): "Zephyr USB device (e.g. HCI UART on an nRF52840 Dongle)",
    (0x2FE3, 0x000B): "Zephyr HCI USB (e.g. an nRF52840 Dongle)",
}

T = TypeVar("T")


class DongleProblem(click.ClickException):
    """``--transport auto`` found no controller, or several: one line, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Controller:
    """One candidate: the ``--transport`` string, where it was found, what it is."""

    transport: str
    kind: str  # serial, usb or given (CGMSIM_DONGLES / --candidate)
    usb_id: str | None = None  # "VVVV:PPPP"
    description: str = ""
    answers_reset: bool | None = None  # None: not asked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _usb_id(vid: int | None, pid: int | None) -> str | None:
    return None if vid is None or pid is None else f"{vid:04X}:{pid:04X}"


def _known(vid: int | None, pid: int | None, description: str) -> str:
    name = KNOWN_USB_IDS.get((vid, pid)) if vid is not None and pid is not None else None
    return f"{description} [{name}]" if name else description


def serial_ports() -> list[Controller]:
    """USB serial ports (pyserial's listing), as ``serial:`` transports."""
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        if port.vid is None:
            continue
        description = port.description if port.description != "n/a" else ""
        found.append(
            Controller(
                f"serial:{port.device},{SERIAL_SETTINGS}",
                "serial",
                _usb_id(port.vid, port.pid),
                _known(port.vid, port.pid, description),
            )
        )
    return found


def usb_controllers() -> list[Controller]:
    """USB Bluetooth HCI controllers (bumble's class test), as ``usb:<n>`` transports; none
    when libusb or the USB bus cannot be opened."""
    try:
        import usb1
        from bumble.apps.usb_probe import is_bluetooth_hci
        from bumble.transport.usb import load_libusb

        load_libusb()
        found = []
        with usb1.USBContext() as context:
            for device in context.getDeviceIterator(skip_on_error=True):
                if not is_bluetooth_hci(device):
                    continue
                vid, pid = device.getVendorID(), device.getProductID()
                try:
                    product = device.getProduct() or ""
                except usb1.USBError:
                    product = ""
                found.append(
                    Controller(
                        f"usb:{len(found)}", "usb", _usb_id(vid, pid), _known(vid, pid, product)
                    )
                )
        return found
    except Exception:  # no libusb, no bus, no permission: nothing to list here
        return []


def given_candidates(extra: Iterable[str] = ()) -> list[Controller]:
    """Transports named in ``CGMSIM_DONGLES`` (``;``-separated) and ``extra``."""
    names = [n.strip() for n in os.environ.get(ENV_CANDIDATES, "").split(";")]
    return [Controller(name, "given") for name in [*names, *extra] if name]


async def answers_reset(transport: str, timeout_s: float = RESET_TIMEOUT_S) -> bool:
    """Whether the controller at ``transport`` answers HCI Reset with Success in time."""
    from bumble import hci
    from bumble.transport import open_transport

    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bool] = loop.create_future()

    class Listener:
        def on_packet(self, packet: bytes) -> None:
            try:
                event = hci.HCI_Packet.from_bytes(packet)
            except Exception:  # noise on a line that is not HCI
                return
            if (
                isinstance(event, hci.HCI_Command_Complete_Event)
                and event.command_opcode == hci.HCI_RESET_COMMAND
                and not answered.done()
            ):
                status = getattr(event.return_parameters, "status", event.return_parameters)
                answered.set_result(int(status) == hci.HCI_SUCCESS)

    try:
        opened = await asyncio.wait_for(open_transport(transport), timeout_s)
    except Exception:
        return False
    try:
        opened.source.set_packet_sink(Listener())
        opened.sink.on_packet(bytes(hci.HCI_Reset_Command()))
        return await asyncio.wait_for(answered, timeout_s)
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(opened.close(), timeout_s)


def _run(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end from sync code, also when called inside a running loop
    (``sim.hil``'s ``_open``): then on a loop of its own in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine())
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, coroutine()).result()


def list_controllers(extra: Iterable[str] = (), probe: bool = True) -> list[Controller]:
    """Every candidate (serial ports, USB HCI controllers, given ones), asked for HCI Reset
    unless ``probe`` is False."""
    found = [*serial_ports(), *usb_controllers(), *given_candidates(extra)]
    if not probe:
        return found

    async def ask() -> list[bool]:
        return list(await asyncio.gather(*(answers_reset(c.transport) for c in found)))

    answers = _run(ask) if found else []
    return [
        Controller(c.transport, c.kind, c.usb_id, c.description, answer)
        for c, answer in zip(found, answers, strict=True)
    ]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def resolve_transport(
    spec: str, say: Callable[[str], None] = _say, extra: Iterable[str] = ()
) -> str:
    """``spec`` itself, or for ``auto`` the one attached controller that answers HCI Reset
    (``say`` names it); none or several raise ``DongleProblem`` naming what was found.
    ``extra``: more candidates, as ``CGMSIM_DONGLES``."""
    if spec != "auto":
        return spec
    found = list_controllers(extra)
    answering = [c for c in found if c.answers_reset]
    if len(answering) == 1:
        chosen = answering[0]
        say(f"cgmsim: --transport auto: using {chosen.transport} {_label(chosen)}".rstrip())
        return chosen.transport
    if answering:
        names = ", ".join(c.transport for c in answering)
        raise DongleProblem(
            f"--transport auto: {len(answering)} controllers answer HCI Reset ({names});"
            " choose one with --transport"
        )
    names = ", ".join(c.transport for c in found)
    silent = f"; none answers HCI Reset: {names}" if found else ""
    raise DongleProblem(
        f"--transport auto: no controller found{silent}"
        " (cgmsim dongles lists them; docs/hil.md, Finding your dongle)"
    )


def _label(controller: Controller) -> str:
    parts = [p for p in (controller.usb_id, controller.description) if p]
    return f"({', '.join(parts)})" if parts else ""


@click.command(name="dongles")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--no-probe", is_flag=True, help="Do not send HCI Reset to each candidate.")
@click.option(
    "--auto",
    is_flag=True,
    help="Print only the transport --transport auto picks (exit 2 when none or several).",
)
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    hidden=True,
    metavar="T",
    help="Also try transport T (no listing shows a pty or a TCP bridge).",
)
def dongles_command(as_json: bool, no_probe: bool, auto: bool, candidates: tuple[str, ...]) -> None:
    """List the BLE controllers attached (USB serial ports and USB HCI controllers, with their
    USB vendor:product IDs), each with the --transport string to pass and whether it answers
    HCI Reset. More candidates: CGMSIM_DONGLES="T1;T2"."""
    if auto:
        click.echo(resolve_transport("auto", extra=candidates))
        return
    found = list_controllers(candidates, probe=not no_probe)
    if as_json:
        click.echo(json.dumps([c.to_json() for c in found]))
        return
    if not found:
        click.echo("no controllers found (USB serial ports, USB HCI controllers)")
        return
    for c in found:
        reset = {True: "answers HCI Reset", False: "no answer to HCI Reset", None: "not asked"}
        click.echo(f"{c.transport}\t{c.kind}\t{reset[c.answers_reset]}\t{_label(c)}".rstrip())
