"""Sensor Status Annunciation: three octets carried by CGM Measurement and CGM Status
(CGMS v1.0.1 §3.1.1.5, Table 3.3). Reserved bits are kept as read; collectors ignore them
(CGMP §4.4)."""

from __future__ import annotations

import enum


class StatusFlags(enum.IntFlag):
    """Status octet (annunciation bits 0-7)."""

    SESSION_STOPPED = 0x01
    DEVICE_BATTERY_LOW = 0x02
    SENSOR_TYPE_INCORRECT = 0x04
    SENSOR_MALFUNCTION = 0x08
    DEVICE_SPECIFIC_ALERT = 0x10
    GENERAL_DEVICE_FAULT = 0x20


class CalTempFlags(enum.IntFlag):
    """Cal/Temp octet (annunciation bits 8-15)."""

    TIME_SYNCHRONIZATION_REQUIRED = 0x01
    CALIBRATION_NOT_ALLOWED = 0x02
    CALIBRATION_RECOMMENDED = 0x04
    CALIBRATION_REQUIRED = 0x08
    SENSOR_TEMPERATURE_TOO_HIGH = 0x10
    SENSOR_TEMPERATURE_TOO_LOW = 0x20


class WarningFlags(enum.IntFlag):
    """Warning octet (annunciation bits 16-23)."""

    RESULT_LOWER_THAN_PATIENT_LOW = 0x01
    RESULT_HIGHER_THAN_PATIENT_HIGH = 0x02
    RESULT_LOWER_THAN_HYPO = 0x04
    RESULT_HIGHER_THAN_HYPER = 0x08
    RATE_OF_DECREASE_EXCEEDED = 0x10
    RATE_OF_INCREASE_EXCEEDED = 0x20
    RESULT_LOWER_THAN_DEVICE_CAN_PROCESS = 0x40
    RESULT_HIGHER_THAN_DEVICE_CAN_PROCESS = 0x80
