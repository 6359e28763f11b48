"""One simulated session: what configures it, what it gives back, and what drives it."""
