"""Session time: the virtual-time loop and the scheduler that orders each instant."""
