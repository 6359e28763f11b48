"""Captures of real devices' CGM traffic, imported as recordings (``cgmsim import``).

``hci_files`` reads btsnoop and pcap/pcapng HCI captures; ``att_stream`` reassembles ACL and
L2CAP into the ATT conversation; ``cgms_handles`` maps ATT handles to the CGM service's
characteristics (from the capture's discovery or ``--handles``); ``exchanges`` keeps what the
firmware cores see; ``importer`` writes a recording of either side; ``command`` is the CLI.
"""
