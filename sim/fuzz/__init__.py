"""Fuzzing the decoders and the firmware cores (``cgmsim fuzz``; see ``sim.fuzz.engine``)."""
