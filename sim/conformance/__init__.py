"""``cgmsim conformance``: cgmsim as an independent tester of a CGM sensor (and, later, of a
collector), running the Bluetooth SIG CGMS test specification's cases over the air.

- ``registry``: the cases (id, title, the spec section the verdict rests on, applicability
  from the CGM Feature bits, destructive or not, timeout) and the verdicts.
- ``wire``: what the tester knows of the frames, written from the spec for the tester alone
  (record layout, E2E-CRC check, expected control-point answers), so that a misreading shared
  by our transmitter's codecs does not vouch for itself.
- ``tester``: the live link to the device under test (reads, writes, control-point procedures
  with the frames that decided them).
- ``runner``: finds the sensor, connects, pairs, runs the cases each under its own timeout.
- ``cases_*``: the cases. ``report``: text, JSON and JUnit XML. ``command``: the CLI.

docs/conformance.md lists the cases and what is not covered yet.
"""
