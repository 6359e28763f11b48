"""Bytes <-> typed frames. Pure: no clock, no I/O, no randomness."""
