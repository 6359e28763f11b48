"""The sample grid and the chunked, chunk-size-independent building blocks of the signal chain.

Every generator here produces the same numbers whatever the chunk size: random draws are taken
time-major (one row of ``n`` values per sample), filters carry their state across chunks, and
discrete events are drawn once for the whole run and scattered into each chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter, lfilter_zi

SAMPLE_MIN = 5.0  # the CGM grid: one sample every 5 minutes
MINUTES_PER_DAY = 1440.0


@dataclass
class Filter:
    """An IIR filter applied along time to ``n`` streams, its state carried between chunks."""

    b: np.ndarray
    a: np.ndarray
    state: np.ndarray  # (n, order)

    @classmethod
    def create(
        cls, b: np.ndarray, a: np.ndarray, n: int, initial: np.ndarray | None = None
    ) -> Filter:
        b, a = np.asarray(b, float), np.asarray(a, float)
        order = max(len(a), len(b)) - 1
        state = np.zeros((n, order))
        if initial is not None:  # start in steady state for a constant input
            state = np.outer(initial, lfilter_zi(b, a))
        return cls(b, a, state)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self.state = lfilter(self.b, self.a, x, axis=1, zi=self.state)
        return y


def peak_kernel(peak_min: float) -> tuple[np.ndarray, np.ndarray]:
    """IIR coefficients whose impulse response is ``x^2·exp(2(1 - x))``, ``x = t/tp``, on the
    5-min grid: a gamma-shaped curve (meal, insulin, exercise) that starts flat, peaks at 1.0 at
    ``t = tp`` and decays; its steepest slope is about 1.70/tp per unit amplitude.

    ``Z{n^2 r^n} = r z^-1 (1 + r z^-1) / (1 - r z^-1)^3`` with ``r = exp(-2·dt/tp)``.
    """
    r = np.exp(-2.0 * SAMPLE_MIN / peak_min)
    gain = (SAMPLE_MIN / peak_min) ** 2 * np.e**2
    return gain * np.array([0.0, r, r * r]), np.array([1.0, -3.0 * r, 3.0 * r * r, -(r**3)])


@dataclass
class Events:
    """Discrete events for a whole run: (stream, sample index, amplitude), sorted by sample."""

    stream: np.ndarray
    sample: np.ndarray
    amplitude: np.ndarray

    @classmethod
    def of(cls, stream: np.ndarray, sample: np.ndarray, amplitude: np.ndarray) -> Events:
        order = np.argsort(sample, kind="stable")
        return cls(stream[order], sample[order].astype(np.int64), amplitude[order])

    def impulses(self, n: int, start: int, stop: int) -> np.ndarray:
        """Events in samples [start, stop) as an (n, stop - start) array of impulses."""
        lo, hi = np.searchsorted(self.sample, [start, stop])
        out = np.zeros((n, stop - start))
        np.add.at(out, (self.stream[lo:hi], self.sample[lo:hi] - start), self.amplitude[lo:hi])
        return out


@dataclass
class Normals:
    """Standard normal innovations for ``n`` streams, drawn time-major (chunk-size independent)."""

    rng: np.random.Generator
    n: int
    scale: np.ndarray | None = None  # per stream; None: unit variance

    def draw(self, length: int) -> np.ndarray:
        """Shape ``(n, length)`` (a transposed view of the time-major draw)."""
        draws = self.rng.standard_normal((length, self.n))
        return (draws if self.scale is None else draws * self.scale).T
