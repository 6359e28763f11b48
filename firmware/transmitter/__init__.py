"""The transmitter (sensor) firmware: signal processing, lifecycle, record store, CGMS server."""
