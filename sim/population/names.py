"""Names a population study's command line and outputs share (kept light: the command imports
this when the CLI starts, and the study's heavy modules only when it runs)."""

COHORTS = ("all", "adult", "adolescent", "child")
JSON_NAME = "population.json"
PNG_NAME = "population.png"
