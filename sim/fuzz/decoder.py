"""Fuzz target: every CGMS decoder, on seed frames mutated byte by byte.

An action is ``[characteristic name, e2e_crc mode (null/true/false), "hex:<bytes>"]``.
Invariant after each: the decoder returns a value or raises a ``FrameError`` whose message
names the characteristic (architecture.md, "Errors"); a value that decodes also renders as
wire fields (``fields``, what ``cgmsim decode`` prints). Anything else escaping is a crash.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from protocol.cgms.codecs import CODECS
from protocol.errors import FrameError
from sim.fuzz import corpus
from sim.fuzz.engine import Action, Failure, InvariantViolated, failure_from
from sim.fuzz.mutate import mutate, pick
from sim.fuzz.schema import Table, hex_value, optional_flag

MODES = (None, True, False)
Decode = Callable[[bytes, bool | None], Any]


class DecoderTarget:
    name = "decoder"
    action_kind = "codec"

    def __init__(
        self,
        decoders: dict[str, tuple[Decode, Decode]] | None = None,
        seeds: corpus.Seeds | None = None,
    ) -> None:
        """``decoders``: name -> (decode, fields); the project's codecs by default."""
        self.decoders = decoders or {
            name: (codec.decode, codec.fields) for name, codec in CODECS.items()
        }
        self.titles = {name: CODECS[name].characteristic.title for name in self.decoders}
        self.seeds = seeds or corpus.seeds()
        self.names = tuple(sorted(self.decoders))
        self.actions: Table = {name: (optional_flag, hex_value) for name in self.decoders}

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        actions = []
        draw = rng.random
        names, seeds = self.names, self.seeds
        for _ in range(count):
            name = names[int(draw() * len(names))]
            pool = seeds[name]
            data = pick(rng, pool)
            if draw() < 0.85:
                data = mutate(rng, data, pool)
            actions.append([name, MODES[int(draw() * 3)], "hex:" + data.hex()])
        return actions

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        decoders, titles = self.decoders, self.titles
        for index, (name, mode, value) in enumerate(actions):
            data = bytes.fromhex(value[4:])
            decode, fields = decoders[name]
            try:
                try:
                    decode(data, mode)
                except FrameError as error:
                    if not str(error).startswith(titles[name]):
                        raise InvariantViolated(
                            "error-names-characteristic", f"{name}: {error}"
                        ) from None
                    continue
                fields(data, mode)
            except Exception as error:
                return index + 1, failure_from(error, index)
        return len(actions), None
