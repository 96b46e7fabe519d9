"""The suite's classifiers in worker processes: the same results as in this one, in the
caller's order, in other processes that start without torch; bad worker counts refused."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from joblib import cpu_count
from omegaconf import OmegaConf

from tests.conftest import ROOT
from tests.metrics.toy import ToySource, mixing_encoder
from tests.metrics.worker_probe import process_facts, touch_or_fail
from vaelab.metrics.classifiers import (
    AUTO_MIN_CODES,
    FOREST_TREES,
    Fit,
    auto_jobs,
    fit_all,
    fit_one,
    forest_classifier,
    grow_trees,
    join_trees,
    map_groups,
    map_jobs,
    pieces,
    workers,
)
from vaelab.metrics.codes import DirectCodes
from vaelab.metrics.fairness import draw_fairness, fairness_from_draw
from vaelab.metrics.settings import check_jobs
from vaelab.metrics.suite import SuiteConfig, make_config, run_suite
from vaelab.sweep import batch_jobs, launcher_jobs


def test_the_classifier_module_and_the_metrics_package_load_without_torch():
    code = (
        "import sys, vaelab.metrics, vaelab.metrics.classifiers; "
        "assert 'torch' not in sys.modules, 'torch loaded'; "
        "from vaelab.metrics import METRICS; assert 'torch' not in sys.modules, 'by METRICS'; "
        "from vaelab.metrics import mig_from_codes; assert 'torch' in sys.modules; "
        "print(len(METRICS), mig_from_codes.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "13 mig_from_codes"  # the lazy names still resolve


def test_workers_are_other_processes_and_fit_without_loading_torch():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    fit_all([Fit("hist", rng.normal(size=(100, 2)), y), Fit("lr", rng.normal(size=(100, 2)), y)], 2)
    facts = map_jobs(process_facts, list(range(4)), jobs=2, cost=lambda i: i)  # the same pool
    pids = {pid for pid, _ in facts}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert not any(torch_loaded for _, torch_loaded in facts)
    here = map_jobs(process_facts, list(range(4)), jobs=1, cost=lambda i: i)
    assert {pid for pid, _ in here} == {os.getpid()}


def test_fits_in_workers_equal_fits_here_in_the_callers_order():
    """Every model kind; the costs rise along the list, so the workers get it reversed."""
    rng = np.random.default_rng(0)
    n = 300
    factors = np.stack([rng.integers(0, c, n) for c in (2, 3, 5, 7)], 1)
    codes = factors @ rng.normal(size=(4, 4)) + 0.5 * rng.normal(size=(n, 4))
    test = codes[:50] + 0.1
    fits = [
        Fit(model, codes, factors[:, j], (codes, test), importance=model != "lr", seed=j)
        for j, model in enumerate(("hist", "sklearn", "rf", "lr"))
    ]
    assert [f.cost() for f in fits] == sorted(f.cost() for f in fits)
    here, there = fit_all(fits, jobs=1), fit_all(fits, jobs=2)
    for fit, a, b in zip(fits, here, there, strict=True):
        assert len(a.predictions) == 2 and a.predictions[1].shape == (50,)
        assert set(np.unique(a.predictions[0])) <= set(np.unique(fit.y))
        for p, q in zip(a.predictions, b.predictions, strict=True):
            np.testing.assert_array_equal(p, q)
        if fit.importance:
            assert a.importance.sum() == pytest.approx(1.0)
            np.testing.assert_array_equal(a.importance, b.importance)
        else:
            assert a.importance is None and b.importance is None
    # each fit's own answer, not a neighbour's: the learnt classes are its factor's
    assert [len(np.unique(f.predictions[0])) for f in here] == [2, 3, 5, 7]


def test_a_forest_grown_in_pieces_is_the_forest_grown_at_once_tree_for_tree():
    """Tripod's forest of 100 trees as the workers get it, four pieces of 25 trees, joined:
    each tree, the class probabilities and the importances are those of one fit."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 5))
    y = (2 * x[:, 0] + x[:, 1] + rng.normal(size=800) > 0).astype(int) + (x[:, 2] > 1)
    whole = forest_classifier(seed=7).fit(x, y)
    fit = Fit("rf", x, y, (x[:100],), importance=True, seed=7)
    items = pieces(fit)
    assert [(p.start, p.stop) for p in items] == [(0, 25), (25, 50), (50, 75), (75, 100)]
    assert sum(p.cost() for p in items) == fit.cost()
    joined = join_trees([grow_trees(forest_classifier(7), x, y, p.start, p.stop) for p in items])
    assert len(joined.estimators_) == FOREST_TREES == joined.n_estimators
    for a, b in zip(whole.estimators_, joined.estimators_, strict=True):
        for part in ("feature", "threshold", "children_left", "children_right", "value"):
            np.testing.assert_array_equal(getattr(a.tree_, part), getattr(b.tree_, part))
    np.testing.assert_array_equal(whole.predict_proba(x), joined.predict_proba(x))
    np.testing.assert_array_equal(whole.feature_importances_, joined.feature_importances_)
    one = fit_one(fit)  # the whole forest in one fit
    for got in fit_all([fit], jobs=1)[0], fit_all([fit], jobs=2)[0]:
        np.testing.assert_array_equal(got.predictions[0], one.predictions[0])
        np.testing.assert_array_equal(got.importance, one.importance)


@pytest.mark.parametrize("jobs", [1, 2])
def test_groups_are_combined_from_their_results_in_their_order(jobs):
    """Each group's results reach ``combine`` in the group's order, with its index, whichever
    item finished first (the costs hand the last items out first); an empty group too."""
    groups = [[3, 1, 2], [], [7], [5, 4]]
    calls = []

    def combine(g, done):
        calls.append(g)
        return (g, done)

    got = map_groups(abs, groups, jobs, cost=lambda i: i, combine=combine)
    assert got == [(0, [3, 1, 2]), (1, []), (2, [7]), (3, [5, 4])]
    assert sorted(calls) == [0, 1, 2, 3]  # each group once


def test_the_suite_scores_the_same_with_two_workers(caplog):
    """DCI (both), DCI-ES, the downstream tasks and fairness, with one process and two; with
    two they run side by side, a thread each, while MIG is scored in the caller's thread."""
    metrics = ["mig", "dci", "downstream", "fairness", "dci_es", "dci_rf"]
    small = {"num_train": 300, "num_test": 100, "downstream_sizes": (10, 100),
             "fairness_per_class": 5, "dci_es_trees": 10}  # fmt: skip
    source, encode = ToySource(), mixing_encoder()
    caplog.set_level(logging.INFO, logger="vaelab")
    one = run_suite(source, encode, 2, metrics, **small)
    threads_one = metric_threads(caplog.records, metrics)
    caplog.clear()
    two = run_suite(source, encode, 2, metrics, **small, jobs=2)
    threads_two = metric_threads(caplog.records, metrics)
    scores = {k: v for k, v in one.values.items() if "/time/" not in k}
    assert len(scores) == 18  # 17 scores and the count of encoded images
    assert scores == {k: two.values[k] for k in scores}
    assert list(one.values) == list(two.values)  # the keys in the order of `metrics`
    np.testing.assert_array_equal(one.importance, two.importance)
    assert set(threads_one.values()) == {"MainThread"}
    assert threads_two.pop("mig") == "MainThread"
    assert len(set(threads_two.values())) == 5  # a thread of its own for each
    assert all(name.startswith("suite") for name in threads_two.values())


def test_the_suite_starts_its_workers_before_the_encoder_runs():
    """With classifiers to fit in workers, the pool's processes are started (to import
    scikit-learn) before the codes are encoded, not when the first fits reach them."""
    workers(2).shutdown(wait=True)  # none left from an earlier test
    encode, seen = mixing_encoder(), []

    def watched(x):
        if not seen:
            seen.append(started_workers())
        return encode(x)

    run_suite(ToySource(), watched, 0, ["mig", "dci"], num_train=300, num_test=100, jobs=2)
    assert seen[0] == 2
    workers(2).shutdown(wait=True)
    seen.clear()
    run_suite(ToySource(), watched, 0, ["mig", "sap"], num_train=300, num_test=100, jobs=2)
    assert seen[0] == 0  # nothing to fit: no worker


def started_workers() -> int:
    """Worker processes the shared executor has started. Its own count: a worker just forked
    still has this process's command line in /proc until it execs loky's entry point, later
    on a loaded machine (a count by command line once read 0 there)."""
    return len(workers(2)._processes)


def metric_threads(records: list[logging.LogRecord], metrics: list[str]) -> dict[str, str]:
    """The thread that logged each metric's line (one line each)."""
    lines = [r for r in records if r.name == "vaelab.metrics.suite"]
    threads = {r.getMessage().split()[0]: r.threadName for r in lines}
    assert len(lines) == len(threads) and set(threads) == set(metrics)
    return threads


@pytest.mark.parametrize("jobs", [0, 1.5, "2", True, None])
def test_a_worker_count_that_is_not_one_is_refused_in_one_sentence(jobs):
    with pytest.raises(ValueError, match=r"evaluation\.suite\.jobs=.* use 1 to fit .* -1 for one"):
        check_jobs(jobs)
    with pytest.raises(ValueError, match="is not a number of worker processes"):
        make_config(jobs=jobs)


def test_the_default_is_this_process_and_minus_one_means_every_core():
    assert SuiteConfig().jobs == 1 and check_jobs(-1) == -1 and check_jobs(16) == 16


def test_auto_is_the_cores_this_process_may_use_shared_by_the_jobs_beside_it():
    cores = cpu_count()
    assert check_jobs("auto") == "auto" and make_config(jobs="auto").jobs == "auto"
    assert auto_jobs(10_000, 100) == cores and auto_jobs(10_000, 100, beside=cores) == 1
    assert auto_jobs(10_000, 100, beside=2) == max(1, cores // 2)
    assert auto_jobs(10_000, num_fits=1) == 1  # at most a worker a fit
    assert auto_jobs(AUTO_MIN_CODES - 1, 100) == 1  # starting workers would cost more
    cfg = make_config(jobs="auto", num_train=10_000, downstream_sizes=(10, 100))
    assert cfg.fits(["mig", "dci", "dci_rf"], num_factors=5) == 25  # the forest in 4 pieces
    assert make_config(dci_es_trees=30).fits(["dci_es"], num_factors=5) == 10  # 25 + 5 trees
    assert cfg.fits(["downstream"], num_factors=5) == 20  # 2 models x 2 sizes x 5 factors
    assert cfg.resolved(["mig", "sap"], 5).jobs == 1  # no classifier to fit
    assert cfg.resolved(["downstream"], 5).jobs == 1  # 100 codes at most
    assert cfg.resolved(["mig", "dci"], 5).jobs == min(cores, 5)
    assert make_config(jobs=3).resolved(["dci"], 5).jobs == 3  # a number stays
    with pytest.raises(ValueError, match="resolve it first"):  # not a count a pool can take
        map_jobs(abs, [1, 2], "auto", cost=abs)
    # a process allowed one core (taskset, a SLURM allocation of one CPU) fits in itself
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from vaelab.metrics.classifiers import auto_jobs; print(auto_jobs(10_000, 100))"
    )
    one_core = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert one_core.stdout.split() == ["1"], one_core.stderr[-2000:]


def test_the_suite_says_where_auto_fits_its_classifiers(caplog):
    caplog.set_level(logging.INFO, logger="vaelab.metrics.suite")
    small = {"num_train": 300, "num_test": 100, "jobs": "auto"}
    run_suite(ToySource(), mixing_encoder(), 0, ["mig", "dci"], beside=2, **small)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("suite:")]
    cores = cpu_count()
    assert said == [  # 300 codes: below AUTO_MIN_CODES
        "suite: classifiers fitted in this process "
        f"(evaluation.suite.jobs=auto: {cores} cores, shared by 2 jobs at once)"
    ]
    caplog.clear()  # no classifier to fit, or a number of jobs given: nothing to say
    run_suite(ToySource(), mixing_encoder(), 0, ["mig"], **small)
    run_suite(ToySource(), mixing_encoder(), 0, ["dci"], **{**small, "jobs": 1})
    assert not [r for r in caplog.records if r.getMessage().startswith("suite:")]


def test_auto_shares_the_cores_with_the_jobs_a_launcher_runs_at_once(tmp_path):
    """The launcher's slots, at most the jobs of the sweep's batch: counted from the
    ``multirun.yaml`` Hydra's basic sweeper writes (the command line's sweeps), an Optuna
    sweeper's ``n_jobs``; the slots alone when the file is missing."""
    hydra = HydraConfig.instance()
    before = hydra.cfg
    hydra.cfg = None
    cores = cpu_count()
    launched = {
        "hydra": {
            "overrides": {"task": ["beta=1,4", "seed=0,1,2", "model=beta_vae"]},
            "sweeper": {"max_batch_size": None, "params": {"lr": "1e-3,1e-4"}},
        }
    }
    OmegaConf.save(launched, tmp_path / "multirun.yaml")  # 2 x 3 x 2 = 12 jobs
    (tmp_path / "one").mkdir()
    OmegaConf.save({"hydra": {"overrides": {"task": ["seed=0"]}}}, tmp_path / "one/multirun.yaml")
    (tmp_path / "batches").mkdir()
    launched["hydra"]["sweeper"]["max_batch_size"] = 5
    OmegaConf.save(launched, tmp_path / "batches" / "multirun.yaml")
    try:
        assert launcher_jobs() == 1  # no Hydra job: a plain call
        cases = (
            ("joblib", 2, tmp_path / "none", 2),  # no multirun.yaml: the slots
            ("joblib", -1, tmp_path / "none", cores),
            ("joblib", -1, tmp_path, min(cores, 12)),
            ("joblib", -1, tmp_path / "one", 1),  # one job: every core its own
            ("joblib", -1, tmp_path / "batches", min(cores, 5)),
            ("basic", None, tmp_path, 1),
            ("submitit_local", None, tmp_path / "none", cores),  # it starts every job at once
            ("submitit_local", None, tmp_path / "one", 1),
        )
        for launcher, n_jobs, sweep_dir, expected in cases:
            overrides = [f"hydra/launcher={launcher}", "hydra.mode=MULTIRUN",
                         f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
            overrides += [f"hydra.launcher.n_jobs={n_jobs}"] if n_jobs else []
            with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
                cfg = compose("train", overrides=overrides, return_hydra_config=True)
            hydra.set_config(cfg)
            assert launcher_jobs() == expected, (launcher, n_jobs, sweep_dir.name)
            counted = {"none": None, "one": 1, "batches": 5}.get(sweep_dir.name, 12)
            assert batch_jobs(HydraConfig.get()) == counted, sweep_dir.name
        # run again: the jobs whose folders hold a completed run end at once
        statuses = ["completed"] * 9 + ["failed", "running"]
        for i, status in enumerate(statuses):
            (tmp_path / f"{i}_beta_vae").mkdir()
            (tmp_path / f"{i}_beta_vae" / "metrics.json").write_text(json.dumps({"status": status}))
        (tmp_path / "11_beta_vae").mkdir()
        (tmp_path / "11_beta_vae" / "metrics.json").write_text("{ cut short")  # counts as not
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            cfg = compose("train", return_hydra_config=True, overrides=[
                "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1", "hydra.mode=MULTIRUN",
                f"hydra.sweep.dir={tmp_path}"])  # fmt: skip
        hydra.set_config(cfg)
        assert batch_jobs(HydraConfig.get()) == 3  # 12 jobs, 9 completed
        assert launcher_jobs() == min(cores, 3)
        for i in range(9, 12):
            (tmp_path / f"{i}_beta_vae" / "metrics.json").write_text('{"status": "completed"}')
        assert batch_jobs(HydraConfig.get()) == 1  # all done: this job alone, at least
        with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
            cfg = compose("train", return_hydra_config=True, overrides=[
                "sweep=optuna", "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1",
                "hydra.sweeper.n_jobs=1", "hydra.mode=MULTIRUN"])  # fmt: skip
        hydra.set_config(cfg)
        assert launcher_jobs() == 1  # one trial at a time
    finally:
        hydra.cfg = before


def test_a_failing_metric_stops_the_others_fits_and_raises_at_once():
    """DCI-ES refuses its depths before fitting, while the downstream tasks' fits are in the
    workers: the error comes through, and the workers are stopped rather than left to finish
    (or to wait 5 minutes for more work)."""
    pids = {pid for pid, _ in map_jobs(process_facts, list(range(8)), jobs=2, cost=lambda i: i)}
    small = {"num_train": 300, "num_test": 100, "downstream_sizes": (100, 1000),
             "dci_es_depths": (4, 2)}  # fmt: skip
    with pytest.raises(ValueError, match="DCI-ES depths must increase"):
        run_suite(ToySource(), mixing_encoder(), 0, ["downstream", "dci_es"], **small, jobs=2)
    deadline = time.monotonic() + 60  # killed, then reaped by the executor's own thread
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if alive(pid)}
        time.sleep(0.2)
    assert not pids
    facts = map_jobs(process_facts, list(range(4)), jobs=2, cost=lambda i: i)  # new workers
    assert all(pid != os.getpid() for pid, _ in facts)


def test_a_failed_item_cancels_the_items_not_started(tmp_path):
    """The failing item goes out first (largest cost); of the 20 others (0.3 s each, 2
    workers, 3 s of work) only those already handed to a worker run. The check cannot fail
    on a slow machine: fewer files then."""
    items = [str(tmp_path / "fail"), *(str(tmp_path / f"item{i}") for i in range(20))]
    with pytest.raises(RuntimeError, match="this item fails"):
        map_jobs(touch_or_fail, items, jobs=2, cost=lambda path: path.endswith("fail"))
    time.sleep(5)
    assert len(list(tmp_path.glob("item*"))) < 20


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
            return stat.read().split(") ")[-1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):  # gone, also between the two looks
        return False


@pytest.mark.parametrize("setting", ["dci_estimator", "downstream_estimator"])
def test_a_tree_estimator_that_is_not_boosted_trees_is_refused(setting):
    with pytest.raises(ValueError, match=rf"unknown evaluation.suite.{setting} estimator 'rf'"):
        make_config(**{setting: "rf"})


def test_fairness_refuses_a_forest_for_its_boosted_trees():
    source = ToySource()
    draw = draw_fairness(source, np.random.default_rng(0), 50, 2)
    with pytest.raises(ValueError, match="unknown tree estimator 'rf'"):
        fairness_from_draw(draw, DirectCodes(source, mixing_encoder()), source, "rf")


def test_the_schedule_model_of_the_fits_hands_each_to_the_first_free_worker():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fit_schedule import makespan

    fits = {"short": [1.0, 1.0, 1.0, 1.0], "long": [4.0]}
    # the long fit queued last starts when a worker frees up, after 2 s: ends at 6 s
    assert makespan(fits, ("short", "long"), workers=2) == 6.0
    assert makespan(fits, ("long", "short"), workers=2) == 4.0  # first: the bound, 4 s
    assert makespan(fits, ("long", "short"), workers=1) == 8.0  # one worker: the sum
