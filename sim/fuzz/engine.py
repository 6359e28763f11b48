"""The fuzz engine: episodes of generated and mutated inputs against one target, invariants
checked after every input, failures shrunk to minimal reproducers and saved with their seed.

A target (``sim.fuzz.targets``) turns a seeded ``random.Random`` into an episode, a list of
JSON-ready actions, and executes a list of actions from a fresh state, returning the first
failure. Generation and mutation run on ``random.Random`` (plain Python, no per-example
overhead), so a campaign reaches tens of thousands of inputs per second; hypothesis is used
where it is good, for the structure-aware seed frames (``sim.fuzz.corpus``). Shrinking is a
deterministic delta-debugging pass over the actions, then over the bytes inside them.

An exception raised by the harness itself (in ``sim/fuzz/``: a generator that produced input
the driver refuses, a reproducer's bad hex) is a :class:`HarnessError`, never a finding in the
target: it stops the campaign with its own message.

An episode that runs longer than ``HANG_SECONDS`` of wall time is stopped by a watchdog (on
the main thread, where signals can be delivered) and reported as a hang, as is an input after
which a core's outputs or timers do not settle (the targets bound those loops).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pathlib
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from protocol.crc import crc16
from sim.fuzz.schema import Table, check_actions

FORMAT = "cgmsim-fuzz-reproducer"
VERSION = 1
HANG_SECONDS = 5.0
Action = list[Any]
HARNESS = pathlib.Path(__file__).resolve().parent


class Hang(Exception):
    """Raised inside a target when an input does not settle, or by the watchdog."""


class HarnessError(Exception):
    """The fuzz harness failed (its own input or code), not the target."""


class InvariantViolated(Exception):
    """A target's check after an input failed; ``name`` identifies the invariant."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str  # "crash", "invariant" or "hang"
    signature: str  # what makes two failures the same (shrinking keeps it)
    message: str
    index: int  # the action after which it happened


class Target(Protocol):
    name: str

    @property
    def actions(self) -> Table:
        """What each action may hold (``sim.fuzz.schema``)."""
        ...

    def generate(self, rng: random.Random, count: int) -> list[Action]:
        """An episode of ``count`` actions."""
        ...

    def execute(self, actions: list[Action]) -> tuple[int, Failure | None]:
        """Run ``actions`` from a fresh state: how many ran, and the first failure."""
        ...


def _in_harness(filename: str) -> bool:
    return HARNESS in pathlib.Path(filename).resolve().parents


def harness_error(error: BaseException, context: str = "") -> HarnessError:
    """``error``, raised by the harness's own code, as the :class:`HarnessError` it is."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({pathlib.Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    found = HarnessError(f"{context}{type(error).__name__} in the harness{where}: {error}")
    found.__cause__ = error
    return found


def failure_from(error: BaseException, index: int) -> Failure:
    """Classify an exception raised while executing action ``index``. One raised by the
    harness's own code is no finding: :class:`HarnessError`."""
    if isinstance(error, Hang):
        return Failure("hang", f"hang:{error}".split(" after ")[0], str(error), index)
    if isinstance(error, InvariantViolated):
        return Failure("invariant", f"invariant:{error.name}", str(error), index)
    if isinstance(error, HarnessError):
        raise error
    frames = traceback.extract_tb(error.__traceback__)
    if frames and _in_harness(frames[-1].filename):
        raise harness_error(error, f"action {index}: ")
    ours = [f for f in frames if not _in_harness(f.filename)] or frames
    where = f"{pathlib.Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    message = f"{type(error).__name__}: {error}"
    return Failure("crash", f"crash:{type(error).__name__}@{where}", message, index)


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in this thread after ``seconds`` (main thread only; elsewhere a
    no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Run(Protocol):
    def apply(self, action: Action) -> None: ...


def play(start: Callable[[], Run], actions: list[Action]) -> tuple[int, Failure | None]:
    """Play ``actions`` on a fresh run (``start()``, whose failures count as the first
    action's): how many ran, and the first failure."""
    index = 0
    try:
        run = start()
        for action in actions:
            run.apply(action)
            index += 1
    except Exception as error:
        return index + 1, failure_from(error, index)
    return len(actions), None


def run_episode(
    target: Target, actions: list[Action], hang_seconds: float
) -> tuple[int, Failure | None]:
    try:
        with watchdog(hang_seconds):
            return target.execute(actions)
    except Hang as error:  # the watchdog fired between two actions' bookkeeping
        return len(actions), failure_from(error, len(actions) - 1)
    except HarnessError:
        raise
    except Exception as error:  # a target's execute lets only its own mistakes escape
        raise harness_error(error) from error


@dataclass
class Report:
    target: str
    seed: int
    link: str = "memory"
    iterations: int = 0
    crashes: int = 0
    hangs: int = 0
    invariant_failures: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # one per unique signature
    fuzz_seconds: float = 0.0
    shrink_seconds: float = 0.0
    setup_seconds: float = 0.0
    stopped_by: str = "iterations"  # or "max-duration"
    seed_episodes: int = 0

    @property
    def unique_failures(self) -> int:
        return len(self.failures)

    @property
    def iterations_per_second(self) -> float:
        return self.iterations / self.fuzz_seconds if self.fuzz_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["unique_failures"] = self.unique_failures
        data["iterations_per_second"] = round(self.iterations_per_second, 1)
        return data


def campaign(
    target: Target,
    iterations: int | None,
    seed: int,
    corpus: pathlib.Path | None = None,
    *,
    max_seconds: float | None = None,
    seed_episodes: Sequence[list[Action]] = (),
    episode_length: int = 200,
    hang_seconds: float = HANG_SECONDS,
    shrink_budget: int = 2_000,
    setup_seconds: float = 0.0,
) -> Report:
    """Fuzz ``target`` for about ``iterations`` inputs (None: no limit), or until
    ``max_seconds`` of wall time have passed (shrinking included), whichever comes first.
    ``seed_episodes`` (the actions of saved reproducers) are played first, as they are. Each
    generated episode draws its own seed from ``seed`` (the reproducer keeps it); each new
    failure is shrunk and, with ``corpus``, saved there as ``<target>-<signature hash>.json``."""
    if iterations is None and max_seconds is None:
        raise ValueError("a campaign needs iterations or max_seconds")
    link = getattr(target, "link", "memory")
    report = Report(target.name, seed, link, setup_seconds=round(setup_seconds, 3))
    report.seed_episodes = len(seed_episodes)
    limit = math.inf if iterations is None else iterations
    deadline = math.inf if max_seconds is None else time.monotonic() + max_seconds
    master = random.Random(seed)
    seen: set[str] = set()
    planned = iter(seed_episodes)
    while report.iterations < limit:
        if time.monotonic() >= deadline:
            report.stopped_by = "max-duration"
            break
        count = int(min(episode_length, limit - report.iterations))
        started = time.perf_counter()
        episode_seed: int | None = None
        actions = next(planned, None)
        if actions is None:
            episode_seed = master.getrandbits(32)
            actions = target.generate(random.Random(episode_seed), count)
        ran, failure = run_episode(target, actions, hang_seconds)
        report.fuzz_seconds += time.perf_counter() - started
        report.iterations += ran
        if failure is None:
            continue
        report.crashes += failure.kind == "crash"
        report.hangs += failure.kind == "hang"
        report.invariant_failures += failure.kind == "invariant"
        if failure.signature in seen:
            continue
        seen.add(failure.signature)
        started = time.perf_counter()
        small = shrink(target, actions[: failure.index + 1], failure, shrink_budget, hang_seconds)
        report.shrink_seconds += time.perf_counter() - started
        entry = reproducer(target.name, seed, episode_seed, failure, small, link)
        if corpus is not None:
            entry["path"] = str(save(corpus, entry))
        report.failures.append(entry)
    report.fuzz_seconds = round(report.fuzz_seconds, 3)
    report.shrink_seconds = round(report.shrink_seconds, 3)
    return report


# --- shrinking ------------------------------------------------------------------------------


def shrink(
    target: Target,
    actions: list[Action],
    failure: Failure,
    budget: int = 2_000,
    hang_seconds: float = HANG_SECONDS,
) -> list[Action]:
    """The smallest list of actions found that still fails with ``failure.signature``: whole
    actions removed (halves, quarters, ... single ones), then bytes removed, zeroed or their
    bits cleared in the hex values the actions carry. Within ``budget`` replays."""
    tries = [0]
    if failure.kind == "hang":
        budget = min(budget, 20)  # each try may cost the watchdog's time

    def fails(candidate: list[Action]) -> bool:
        if tries[0] >= budget or not candidate:
            return False
        tries[0] += 1
        _, again = run_episode(target, candidate, hang_seconds)
        return again is not None and again.signature == failure.signature

    current = [list(action) for action in actions]
    while True:  # simpler bytes may let more actions go: again until neither shrinks
        before = [list(action) for action in current]
        current = _remove_actions(current, fails, lambda: tries[0] < budget)
        for index in range(len(current)):
            for slot, item in enumerate(current[index]):
                if isinstance(item, str) and item.startswith("hex:"):
                    current[index][slot] = (
                        "hex:"
                        + _shrink_bytes(
                            bytes.fromhex(item[4:]),
                            lambda data, c=current, i=index, s=slot: fails(
                                _with(c, i, s, "hex:" + data.hex())
                            ),
                        ).hex()
                    )
        if current == before or tries[0] >= budget:
            return current


def _remove_actions(
    current: list[Action], fails: Callable[[list[Action]], bool], more: Callable[[], bool]
) -> list[Action]:
    """Delta debugging over whole actions: halves, quarters, ... single ones."""
    chunk = max(1, len(current) // 2)
    while chunk >= 1 and more():
        start, removed = 0, False
        while start < len(current):
            candidate = current[:start] + current[start + chunk :]
            if fails(candidate):
                current, removed = candidate, True
            else:
                start += chunk
        if not removed:
            chunk //= 2
    return current


def _with(actions: list[Action], index: int, slot: int, value: Any) -> list[Action]:
    changed = [list(action) for action in actions]
    changed[index][slot] = value
    return changed


def _shrink_bytes(data: bytes, fails_as_is: Callable[[bytes], bool]) -> bytes:
    """Shorter and simpler bytes that still fail; each candidate is also tried with its last
    two bytes made the E2E-CRC of the rest (else a CRC would pin every byte it covers)."""
    fixed: dict[bytes, bytes] = {}

    def fails(candidate: bytes) -> bool:
        if fails_as_is(candidate):
            return True
        if len(candidate) > 2:
            with_crc = candidate[:-2] + crc16(candidate[:-2]).to_bytes(2, "little")
            if with_crc != candidate and fails_as_is(with_crc):
                fixed[candidate] = with_crc
                return True
        return False

    chunk = max(1, len(data) // 2)
    while chunk >= 1:
        start, removed = 0, False
        while start < len(data):
            candidate = data[:start] + data[start + chunk :]
            if fails(candidate):
                data, removed = fixed.get(candidate, candidate), True
            else:
                start += chunk
        if not removed:
            chunk //= 2
    for position in range(len(data)):  # zero each byte, else clear its bits one by one
        zeroed = data[:position] + b"\x00" + data[position + 1 :]
        if data[position] and fails(zeroed):
            data = fixed.get(zeroed, zeroed)
        for bit in range(8):
            if data[position] & (1 << bit):
                cleared = data[:position] + bytes([data[position] & ~(1 << bit)])
                cleared += data[position + 1 :]
                if fails(cleared):
                    data = fixed.get(cleared, cleared)
    return data


# --- reproducers ----------------------------------------------------------------------------


def reproducer(
    target: str,
    seed: int | None,  # None: from a coverage-guided campaign, which has no episode seeds
    episode_seed: int | None,
    failure: Failure,
    actions: list[Action],
    link: str = "memory",
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "target": target,
        "link": link,
        "seed": seed,
        "episode_seed": episode_seed,
        "failure": {
            "kind": failure.kind,
            "signature": failure.signature,
            "message": failure.message,
        },
        "actions": actions,
    }


def save(corpus: pathlib.Path, entry: dict[str, Any]) -> pathlib.Path:
    corpus.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(entry["failure"]["signature"].encode()).hexdigest()[:12]
    link = entry.get("link", "memory")
    name = entry["target"] if link == "memory" else f"{entry['target']}-{link}"
    path = corpus / f"{name}-{digest}.json"
    payload = {key: value for key, value in entry.items() if key != "path"}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load(path: pathlib.Path) -> dict[str, Any]:
    """A reproducer file; ValueError when it is not one."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    if entry.get("version") != VERSION or not isinstance(entry.get("actions"), list):
        raise ValueError(f"{path}: unsupported reproducer (version {entry.get('version')!r})")
    return entry


def check(target: Target, entry: dict[str, Any]) -> None:
    """Raise ``schema.ActionError`` naming the first field of ``entry``'s actions that
    ``target`` cannot play."""
    check_actions(entry["actions"], target.actions, getattr(target, "action_kind", "action"))


def replay(
    target: Target, entry: dict[str, Any], hang_seconds: float = HANG_SECONDS
) -> Failure | None:
    """Run a reproducer's actions again: the failure it still causes, or None when fixed."""
    _, failure = run_episode(target, [list(action) for action in entry["actions"]], hang_seconds)
    return failure
