"""The receiver (display device) firmware: collector, session display, alerts."""
