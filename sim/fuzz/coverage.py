"""Coverage-guided fuzzing with atheris (libFuzzer for Python), for long campaigns:
``cgmsim fuzz --target T --atheris`` (``pip install 'cgmsim[atheris]'``).

libFuzzer mutates byte strings and keeps those that reach new code. Each byte string becomes
an episode through the target's own generator: ``BytesRandom`` is a ``random.Random`` whose every
draw consumes the next bytes of the input (zeros once it runs out), so the generator's choices
(which action, which field, which value) are the fuzzer's bytes, and a mutation of the bytes is a
structural change of the episode. A failing episode is shrunk and saved as an ordinary reproducer
(``--replay`` runs it without atheris), and then reported to libFuzzer as a crash, which stops
the campaign as libFuzzer does and leaves its own artefact (the raw bytes) beside it.

libFuzzer ends the process itself (after ``-runs`` inputs, or at the first crash); its statistics
go to stderr. Coverage is measured on the code under test: every function of ``protocol``,
``firmware`` and ``construct`` (the frame parser) is instrumented when the campaign starts
(``INSTRUMENTED``; instrumenting everything loaded would take a minute).
"""

from __future__ import annotations

import gc
import inspect
import math
import os
import pathlib
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sim.fuzz import engine

EPISODE_LENGTH = 20
INSTRUMENTED = ("protocol", "firmware", "construct")


class BytesRandom(random.Random):
    """A ``random.Random`` drawing from a byte string instead of a generator state."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = bytes(data), 0
        super().__init__(0)

    def _take(self, count: int) -> int:
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return int.from_bytes(chunk.ljust(count, b"\0"), "little")

    def getrandbits(self, k: int) -> int:
        if k <= 0:
            return 0
        return self._take((k + 7) // 8) & ((1 << k) - 1)

    def random(self) -> float:
        return self.getrandbits(53) / (1 << 53)

    def seed(self, *args: Any, **kwargs: Any) -> None:  # the bytes are the only source
        pass


def one_input(
    target: engine.Target,
    corpus: pathlib.Path | None,
    episode_length: int = EPISODE_LENGTH,
    seed_episodes: Sequence[list[engine.Action]] = (),
) -> Callable[[bytes], None]:
    """libFuzzer's ``TestOneInput`` for ``target``: raises ``FoundFailure`` (after saving the
    shrunk reproducer in ``corpus``) when the episode of ``data`` fails; ``seed_episodes``
    are played before the first."""

    planned = list(seed_episodes)

    def test(data: bytes) -> None:
        while planned:  # on the first input: a seed that fails ends the campaign as any input
            _found(target, planned.pop(0), corpus)
        _found(target, target.generate(BytesRandom(data), episode_length), corpus)

    return test


def _found(
    target: engine.Target, actions: list[engine.Action], corpus: pathlib.Path | None
) -> None:
    """Play an episode; when it fails, shrink it, save it and raise ``FoundFailure``."""
    try:
        _, failure = engine.run_episode(target, actions, engine.HANG_SECONDS)
    except engine.HarnessError as error:  # no finding: the campaign ends, not as a crash
        print(f"cgmsim fuzz: the harness failed, not the target: {error}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)
    if failure is None:
        return
    small = engine.shrink(target, actions[: failure.index + 1], failure)
    link = getattr(target, "link", "memory")
    entry = engine.reproducer(target.name, None, None, failure, small, link)
    where = "" if corpus is None else f" -> {engine.save(corpus, entry)}"
    raise FoundFailure(f"{failure.signature}: {failure.message}{where}")


def _functions_under_test() -> list[Callable[..., Any]]:
    found = []
    for obj in gc.get_objects():
        if inspect.isfunction(obj):
            module = (obj.__module__ or "").split(".")[0]
            if module in INSTRUMENTED:
                found.append(obj)
    return found


class FoundFailure(Exception):
    """What libFuzzer sees of a failing episode (the reproducer is already saved)."""


def run(
    target: engine.Target,
    iterations: int | None,
    seed: int,
    corpus: pathlib.Path | None,
    max_seconds: float | None = None,
    seed_episodes: Sequence[list[engine.Action]] = (),
) -> None:
    """A libFuzzer campaign of ``iterations`` inputs (None: no limit) within ``max_seconds``
    (libFuzzer's ``-max_total_time``, whole seconds). ``seed_episodes`` are played first, as
    a campaign without atheris plays them. Does not return: libFuzzer exits."""
    try:
        import atheris
    except ImportError:
        raise RuntimeError(
            "--atheris needs the atheris package: pip install 'cgmsim[atheris]'"
        ) from None
    for function in _functions_under_test():
        atheris.instrument_func(function)
    runs = -1 if iterations is None else iterations
    args = [sys.argv[0], f"-runs={runs}", f"-seed={seed or 1}", "-print_final_stats=1"]
    if max_seconds is not None:
        args.append(f"-max_total_time={max(1, math.ceil(max_seconds))}")
    test = one_input(target, corpus, seed_episodes=seed_episodes)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        args.append(f"-artifact_prefix={corpus}/")
    atheris.Setup(args, test)
    atheris.Fuzz()
