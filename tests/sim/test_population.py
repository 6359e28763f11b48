"""cgmsim population: the same numbers whatever the workers, its JSON and files, bad input."""

import json

import pytest
from click.testing import CliRunner

from firmware.profiles import MINUTE_MS, PROFILES
from sim.population.command import command
from sim.population.sessions import plan, session_seed

# Children: the model's children go low often, so half a simulated day has alert events to score.
STUDY = ["--patients", "2", "--cohort", "child", "--days", "0.5", "--seed", "5"]
RUNNER_KEYS = ("runner", "wall_seconds")


def invoke(*args):
    return CliRunner().invoke(command, list(args))


def study(tmp_path, *workers):
    result = invoke(*STUDY, *workers, "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert json.loads((tmp_path / "population.json").read_text()) == data
    return data


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return study(tmp_path_factory.mktemp("in_process"), "--workers", "0")


def without_runner(data):
    return {k: v for k, v in data.items() if k not in RUNNER_KEYS}


@pytest.mark.slow
def test_one_and_two_dask_workers_give_the_numbers_of_the_in_process_loop(tmp_path, in_process):
    one = study(tmp_path / "one", "--workers", "1", "--threads", "--no-plot")
    two = study(tmp_path / "two", "--workers", "2", "--threads", "--no-plot")
    assert one["runner"] == "local dask cluster, 1 threads, batches shared over the workers"
    assert two["runner"] == "local dask cluster, 2 threads, batches shared over the workers"
    assert without_runner(one) == without_runner(two) == without_runner(in_process)
    # the comparison is not vacuous: the study has alerts, events and readings to score
    performance = in_process["alert_performance"]
    assert sum(p["alerts"] for p in performance.values()) > 0
    assert sum(p["events"] for p in performance.values()) > 0
    assert in_process["accuracy"]["pairs"] > 0


@pytest.mark.slow
def test_an_existing_cluster_runs_the_study_through_its_scheduler(tmp_path, in_process):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        remote = study(tmp_path, "--scheduler", address, "--no-plot")
    assert remote["runner"] == f"dask scheduler {address}, batches shared over the workers"
    assert without_runner(remote) == without_runner(in_process)


def batched(tmp_path, batch, workers):
    """A 17-session study (one batch of 16 and one of 1 at ``--batch 16``)."""
    args = ("--patients", "17", "--days", "0.5", "--seed", "3", "--no-plot")
    out = tmp_path / f"b{batch}w{workers}"
    result = invoke(*args, "--batch", batch, "--workers", workers, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def seventeen_alone(tmp_path_factory):
    """17 batches of one, in this process."""
    return batched(tmp_path_factory.mktemp("alone"), "1", "0")


def test_batches_of_one_and_of_sixteen_give_the_same_numbers(tmp_path, seventeen_alone):
    together = batched(tmp_path, "16", "0")
    assert together["runner"] == "in-process, batches of 16"
    assert without_runner(together) == without_runner(seventeen_alone)
    # not vacuous: 17 different patients, with readings and alerts to score
    assert len({row["patient"] for row in seventeen_alone["per_session"]}) == 17
    assert seventeen_alone["accuracy"]["pairs"] > 0
    assert sum(p["alerts"] for p in seventeen_alone["alert_performance"].values()) > 0


@pytest.mark.slow
def test_batches_on_two_worker_processes_give_the_same_numbers(tmp_path, seventeen_alone):
    two = batched(tmp_path, "16", "2")
    assert two["runner"] == "local dask cluster, 2 processes, batches of 16"
    assert without_runner(two) == without_runner(seventeen_alone)


def test_another_seed_gives_other_numbers(tmp_path, in_process):
    args = ("--patients", "1", *STUDY[2:], "--seed", "6", "--workers", "0", "--no-plot")
    result = invoke(*args, "--out", str(tmp_path), "--json")
    other = json.loads(result.stdout)
    assert other["per_session"][0]["seed"] != in_process["per_session"][0]["seed"]
    assert other["accuracy"]["mard"] != in_process["accuracy"]["mard"]


def test_a_session_depends_on_its_index_only_not_on_the_study_size():
    assert plan(5, seed=9, days=1)[:3] == plan(3, seed=9, days=1)
    assert session_seed(9, 2) != session_seed(9, 3) != session_seed(10, 3)


def test_patients_cycle_over_the_published_ones():
    names = [s.patient for s in plan(32, seed=1, days=1)]
    assert len(set(names)) == 30 and names[30:] == names[:2]
    assert names[0] == "adolescent#001" and names[10] == "adult#001" and names[20] == "child#001"
    assert {s.patient.split("#")[0] for s in plan(12, 1, 1, cohort="adult")} == {"adult"}


def test_json_keys_and_files(tmp_path, in_process):
    assert {
        "patients",
        "cohort",
        "profile",
        "days",
        "seed",
        "sessions",
        "monitored_days",
        "alert_performance",
        "anchor",
        "accuracy",
        "time_in_ranges",
        "by_group",
        "reference_min_mgdl",
        "per_session",
        "runner",
        "wall_seconds",
    } <= set(in_process)
    assert set(in_process["alert_performance"]) == {"urgent_low", "urgent_low_soon", "low", "high"}
    for entry in in_process["alert_performance"].values():
        assert set(entry) == {
            "alerts",
            "true_alerts",
            "true_alert_rate",
            "events",
            "detected",
            "detection_rate",
            "false_alerts",
            "false_alerts_per_day",
        }
    assert in_process["anchor"]["published_percent"] == 84.0
    assert {"mard", "within_20_20", "within_15_15", "pairs"} <= set(in_process["accuracy"])
    assert "time_in_range_70_180" in in_process["time_in_ranges"]["reference"]
    assert set(in_process["by_group"]) == {"child"}
    medians = in_process["by_group"]["child"]["reference_session_medians"]
    assert {"time_in_range_70_180", "time_below_54", "time_above_250", "cv_percent"} <= set(medians)
    assert [row["patient"] for row in in_process["per_session"]] == ["child#001", "child#002"]
    # two sessions of half a day each, monitored from warm-up end
    warmup_min = PROFILES["g7"].warmup_ms / MINUTE_MS
    assert in_process["monitored_days"] == pytest.approx(2 * (720 - warmup_min) / 1440)


@pytest.mark.slow
def test_the_table_and_the_png(tmp_path):
    result = invoke("--patients", "1", *STUDY[2:], "--workers", "0", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "urgent_low_soon" in result.stdout and "published 84 %" in result.stdout
    assert (tmp_path / "population.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--patients", "0"], "--patients"),
        (["--workers", "-1"], "--workers"),
        (["--days", "0"], "--days"),
        (["--cohort", "elderly"], "--cohort"),
        (["--seed", "-3"], "--seed"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--scheduler"),
        (["--workers", "0", "--threads"], "--threads"),
        (["--batch", "0"], "--batch"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, says):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr
