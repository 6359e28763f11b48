"""Population studies: many virtual patients, each wearing a sensor for a session, on Dask.

- ``sessions``: one patient's session (physiology -> sensor -> transmitter -> memory link ->
  receiver), seeded by its index.
- ``labelling``: alert performance as device labelling scores it (behavior.md).
- ``aggregate``: the study's numbers (alert performance, accuracy, times in ranges).
- ``cluster``: where sessions run (in this process, a local Dask cluster, an existing one).
- ``study``: plan, run, aggregate, write population.json; ``figure``: population.png.
- ``command``: ``cgmsim population``.

Cohort: by default the 30 published patients, adolescents, adults and children mixed as
published (10 each), cycled over the sessions. The G6 pivotal study behind the Urgent Low Soon
anchor enrolled adults and children from 6 years (Wadwa 2018), so the anchor's population is
mixed too. Each patient lives their cohort's days (``sim.physiology.cohorts``) on titrated
settings with the counter-regulation of the 2014 model; ``by_group`` in population.json keeps
the groups apart (with the median session's time in ranges, mean and CV, as real-world CGM
studies report them) and ``--cohort adult`` restricts a study.
"""
