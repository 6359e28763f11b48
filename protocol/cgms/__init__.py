"""The Bluetooth SIG Continuous Glucose Monitoring Service (CGMS v1.0.1) wire format."""
