"""Links: adapters that carry GATT traffic between the transmitter and the receiver cores."""
