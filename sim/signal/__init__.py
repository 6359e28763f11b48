"""The world's glucose: reference sources (scenarios, recorded traces) and the sensor chain."""
