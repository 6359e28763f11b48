"""The golden recordings (tests/data/, made by tests/support/goldens.py) replay identical: a
change in how the receiver or the transmitter behaves fails here, naming the first divergence.
After a deliberate change, regenerate them (docs/recording.md)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sim import durable
from sim.recording import fileformat
from sim.recording.command import command as replay_command
from tests.support.goldens import DATA, GOLDENS


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_a_golden_recording_replays_identical(name) -> None:
    done = CliRunner().invoke(replay_command, [str(DATA / name), "--check", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["identical"] is True
    assert result["inputs"]["rx"] > 100 and result["inputs"]["tx"] > 100
    assert result["outputs"] > 200


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_a_golden_is_the_run_its_definition_says(name) -> None:
    """The header tells what made the golden: the same run as tests/support/goldens.py
    defines (else the file and its definition went apart; regenerate)."""
    link, config = GOLDENS[name]
    head, records = fileformat.read(DATA / name)
    assert head["link"] == link
    assert head["settings"] == durable.fingerprint(config)
    assert records[-1][1]["t"] <= config.days * 1440 * 60_000


def test_the_goldens_stay_small() -> None:
    sizes = [(DATA / name).stat().st_size for name in GOLDENS]
    assert sum(sizes) < 300_000
