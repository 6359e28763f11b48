"""Captures of real devices' CGM traffic, imported as recordings (``cgmsim import``).

``hci_files`` reads btsnoop and pcap/pcapng HCI captures; ``att_stream`` reassembles ACL and
L2CAP into the ATT conversation; ``cgms_handles`` maps ATT handles to the CGM service's
characteristics (from the capture's discovery or ``--handles``); ``exchanges`` keeps what the
firmware cores see; ``session_time`` dates each frame from what the sensor states;
``receiver_side`` and ``transmitter_side`` build the lines of either side
(``recording_lines``); ``importer`` writes the recording; ``command`` is the CLI.
"""
