"""The one exception family the protocol layer raises."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by ``protocol``."""


class FrameError(ProtocolError):
    """A frame that is not valid on the wire, or a value that cannot be put on the wire.

    The message names the characteristic, the field and what was wrong, e.g.
    ``CGM Measurement: size byte says 15, record has 13 bytes``.
    """

    def __init__(self, characteristic: str, message: str) -> None:
        super().__init__(f"{characteristic}: {message}")
        self.characteristic = characteristic
        self.detail = message


class CrcError(FrameError):
    """The E2E-CRC is wrong (ATT error 0x81, Invalid CRC, when received by a server)."""


class MissingCrcError(FrameError):
    """E2E-CRC is in use but the frame carries none (ATT error 0x80, Missing CRC)."""


class ControlPointError(FrameError):
    """A control-point request the server must answer with a response code, not an ATT error.

    ``request_opcode`` and ``response_code`` are what the server puts in its response
    (RACP ``06 00 <request_opcode> <response_code>``, SOCP ``1C <request_opcode> <response_code>``).
    """

    def __init__(
        self, characteristic: str, message: str, *, request_opcode: int, response_code: int
    ) -> None:
        super().__init__(characteristic, message)
        self.request_opcode = request_opcode
        self.response_code = response_code
