"""Everything GPU-side in one command: ``make gpu-check``.

Where no CUDA GPU is (this machine), ``gather``: downloads the wheels the GPU machine lacks
(Hydra, W&B and what they need, at the versions installed here) for Python 3.12 on
manylinux x86-64 into ``.whl/`` (git ignores it), builds the pure-Python ones that have no
wheel, and prints the command to run there.

Where a GPU is, ``run``: each part under its own time limit, logs and JSON under ``--out``:

1. ``pytest -m gpu`` (tests/test_gpu.py and the data tests of the GPU path);
2. ``benchmarks/train_throughput.py``: conv at batch 64 and 256 and the MLP, float32 and
   bf16 with the images on the CPU or the GPU, each against the bare loop; nets compiled
   with CUDA graphs (``compile=reduce-overhead``) on conv at batch 256;
3. ``benchmarks/stack_throughput.py``: K models stacked against K separate runs;
   ``benchmarks/step_profile.py`` (by name only, ``--parts ...,profile``): where a step's
   time goes, for conv at batch 256 and stacks of 16;
4. ``benchmarks/metrics_timing.py``: the full metric suite on all of dSprites, its
   classifiers fitted on every core (``--jobs -1``);

then ``gpu-<device>.json`` with every figure, copied to ``benchmarks/results/`` too; the
parts an earlier run on that device made and this one did not (``--parts``) stay in it, each
with the date it ran. A part that fails or runs out of time is recorded as such and the
next one runs. ``run --tiny`` runs the same pipeline in about a minute on a CPU (the tests
do), where the GPU tests skip.

``reproduce``: a piece of ``make reproduce`` in one command: the rows of
conf/experiment/reproduce_dsprites.yaml for one seed, all at once on the GPU (one process
each), each trained for ``--train-seconds`` (Lightning's ``max_time``; the steps reached are
in its ``metrics.json``); then the completed jobs are evaluated one after another on every
core (``src/eval.py sweep=``, the experiment's evaluation with the suite's metrics named in
``--metrics``) in the last ``--eval-seconds`` before ``--deadline``, and ``src/report.py``
sets them beside the published values. What still runs at either deadline is stopped, so
the report always comes back. ``reproduce --experiment compare_2024`` does the same for the
six methods of conf/experiment/compare_2024.yaml.

    python benchmarks/gpu_check.py [gather|run|reproduce] [--tiny] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"
RESULTS = ROOT / "benchmarks" / "results"
# What the GPU machine's image holds (device KINDS.md, read 2026-11-17). What vaelab needs
# beyond it (Hydra, W&B and their requirements) is carried as wheels.
DEVICE_HAS = frozenset(
    """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
certifi charset-normalizer click cloudpickle colorama contourpy cycler filelock fonttools
frozenlist fsspec h11 h5py httpcore httpx idna jinja2 joblib kiwisolver lightning
lightning-utilities markdown markdown-it-py markupsafe matplotlib mdurl mpmath networkx numpy
packaging pandas pillow pip pluggy protobuf psutil pygments pyparsing pytest pytest-xdist
python-dateutil pytorch-lightning pyyaml requests rich scikit-learn scipy setuptools six
sympy tensorboard threadpoolctl torch torchmetrics torchvision tqdm triton urllib3 wheel
xxhash zipp
""".split()  # noqa: SIM905
)
ROOTS = ("hydra-core", "wandb")
ALSO = ("typing-extensions",)  # pydantic-core pins a newer one than the image may hold
MODULES = ("hydra", "omegaconf", "antlr4", "wandb", "lightning", "torchmetrics", "sklearn")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip
RUN_THERE = (
    "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
    "--target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src || exit; "
    "PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py run --out $OUT"
)
# Seconds per part, together under the device's 10 minutes a command (570 s). Measured: on an
# H200 (2026-12-04) the GPU tests took 141 s with 8 workers (the two compiled runs 112 s each,
# in torch's default mode; one is compile=reduce-overhead since 2026-12-06, not yet timed;
# with 4 workers they did not finish in 200 s), the bench 99 s, the compiled bench 43 s; on
# an H100 (2026-12-05) the stack part 59 s and the metric suite with every core 53 s (the
# dSprites cache written first); on an H100 (2026-12-06) the bench 100 s, the compiled bench
# 43 s, the stack 58 s, the suite 47 s, and the tests, 15 of them on 8 workers, were not done
# at 210 s (14 passed). They now run one a worker, so the part lasts as long as its slowest.
# The profile (5 cases, never run on a GPU) keeps the cases it finished if stopped; with the
# tests and the suite it makes 540 s: `--parts tests,profile,metrics` fits one command.
LIMITS = {"tests": 250, "bench": 110, "bench_compiled": 60, "stack": 75, "profile": 220,
          "metrics": 70}  # fmt: skip
PARTS = tuple(LIMITS)
# By default all but the profile (benchmarks/step_profile.py: where a step's time goes), which
# is asked for by name, in place of parts already measured on that device (--parts).
DEFAULT_PARTS = tuple(p for p in PARTS if p != "profile")
# where each part's figures go in gpu-<device>.json
FIGURES = {"bench": "throughput", "bench_compiled": "throughput_compiled", "stack": "stacks",
           "profile": "profiles", "metrics": "metric_suite"}  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> list[str]:
    """``NAME==VERSION`` for ``ROOTS`` and their requirements on Python 3.12 (no extras) that
    the GPU machine lacks, at the versions installed here."""
    from packaging.requirements import Requirement

    env = {"extra": "", "python_version": "3.12", "python_full_version": "3.12.3"}
    found: dict[str, str] = {}
    todo = [*ROOTS, *ALSO]
    while todo:
        name = canonical(todo.pop())
        if name in found or (name in DEVICE_HAS and name not in ALSO):
            continue
        found[name] = importlib.metadata.version(name)
        for line in importlib.metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return [f"{name}=={version}" for name, version in sorted(found.items())]


def gather() -> None:
    """Download (or build, for sdist-only ones) the wheels into ``.whl/``; print the command."""
    WHEELS.mkdir(exist_ok=True)
    platform = [arg for p in PLATFORMS for arg in ("--platform", p)]
    for requirement in pinned():
        name = re.split(r"==", requirement)[0].replace("-", "_").lower()
        if any(w.name.lower().startswith(name + "-") for w in WHEELS.glob("*.whl")):
            continue
        download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                    "cp", *platform, "-d", str(WHEELS), requirement]  # fmt: skip
        if subprocess.run(download, capture_output=True, text=True).returncode != 0:
            # no wheel published (antlr4-python3-runtime 4.9.3): a pure-Python wheel from the
            # source distribution works on any platform
            build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                     str(WHEELS), requirement]  # fmt: skip
            subprocess.run(build, check=True)
    wheels = sorted(WHEELS.glob("*.whl"))
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {mib:.1f} MiB, in {WHEELS}:")
    for w in wheels:
        print(f"  {w.name}")
    print("\nOn the GPU machine (the device tool's run, carry=['.whl'], timeout_s=600):\n")
    print(f"  {RUN_THERE}\n")
    print("or, for a piece of make reproduce (its rows for 300 s each, then evaluated):\n")
    print(f"  {RUN_THERE.replace(' run --out $OUT', ' reproduce --out $OUT')}\n")
    print("then copy gpu-<device>.json from $OUT into benchmarks/results/.")


def part(name: str, cmd: list[str], out: Path, limit: float) -> dict:
    """Run one part with its output in ``out/<name>.log``; its status, seconds and exit code."""
    print(f"[gpu-check] {name}: {' '.join(cmd)} (limit {limit:.0f} s)", flush=True)
    start = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        try:
            code = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=limit).returncode  # fmt: skip
            status = "passed" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            code, status = None, "timed out"
    seconds = round(time.perf_counter() - start, 1)
    print(f"[gpu-check] {name}: {status} after {seconds} s", flush=True)
    return {"status": status, "exit_code": code, "seconds": seconds,
            "date": time.strftime("%Y-%m-%d")}  # fmt: skip


def merged(previous: dict | None, record: dict) -> dict:
    """``record``, and the parts of ``previous`` (an earlier run's record on the same device)
    that it did not run, with their figures and the date and torch each ran with: several short
    runs of some parts add up to one file instead of each replacing the last."""
    if not previous or previous.get("device") != record["device"]:
        return record
    if "throughput_compiled" not in previous:  # a file of 2026-12-04: one list for both
        rows = previous.get("throughput", [])
        previous = {**previous, "throughput": [r for r in rows if not r.get("compile")],
                    "throughput_compiled": [r for r in rows if r.get("compile")]}  # fmt: skip
    out = {**record, "parts": {}}
    for name, earlier in previous.get("parts", {}).items():
        if name in record["parts"]:
            continue
        out["parts"][name] = {"date": previous.get("date"), "torch": previous.get("torch"),
                              **earlier}  # fmt: skip
        if FIGURES.get(name) in previous:
            out[FIGURES[name]] = previous[FIGURES[name]]
    out["parts"].update(record["parts"])
    return out


def test_counts(log: Path) -> dict[str, int]:
    """pytest's last summary line (``3 passed, 1 failed, 2 skipped in ...``) as counts; for a
    run cut short (no summary), its ``-v`` result lines counted, with ``unfinished: 1``."""
    pattern = r"(\d+) (passed|failed|skipped|errors?|deselected)"
    text = log.read_text() if log.is_file() else ""
    lines = [line for line in text.splitlines() if re.search(pattern + ".* in ", line)]
    if lines:
        return {word: int(n) for n, word in re.findall(pattern, lines[-1])}
    ended = re.findall(r"\b(PASSED|FAILED|SKIPPED|ERROR)\b tests/", text)
    counts = {word.lower(): ended.count(word) for word in sorted(set(ended))}
    return {**counts, "unfinished": 1} if counts else {}


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def run(
    out: Path,
    tiny: bool,
    parts: tuple[str, ...] = DEFAULT_PARTS,
    tests_k: str | None = None,
    limits: dict[str, float] | None = None,
) -> int:
    """The ``parts`` named (``DEFAULT_PARTS`` by default), in the order of ``PARTS``;
    ``tests_k`` selects GPU tests as pytest's ``-k``; ``limits`` replaces some parts'
    seconds."""
    import torch

    limits = {**LIMITS, **(limits or {})}
    # each part's own JSON goes here, merged into the device's: $OUT keeps that file and one
    # log per part, 6 files, where the device returns at most 8 (with 10, two logs stayed out)
    figures = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    out.mkdir(parents=True, exist_ok=True)
    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    device = "gpu-" + "-".join(gpu.lower().replace("nvidia", "").split()) if gpu else "cpu"
    print(f"[gpu-check] {gpu or 'no CUDA GPU'}; torch {torch.__version__}; "
          f"missing modules: {missing or 'none'}", flush=True)  # fmt: skip
    py = sys.executable
    record: dict = {
        "device": gpu or "no CUDA GPU",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tiny": tiny,
        "missing_modules": missing,
        "date": time.strftime("%Y-%m-%d"),
        "parts": {},
    }
    name = f"{device}{'-tiny' if tiny else ''}.json"
    # the parts run before on this device: in $OUT from an earlier call on the same machine,
    # else the repository's copy (a fresh machine's $OUT is empty)
    previous = read_json(out / name) or (None if tiny else read_json(RESULTS / name))

    def save() -> None:  # after every part: a command cut short still brings back the rest
        (out / name).write_text(json.dumps(merged(previous, record), indent=2) + "\n")

    # the GPU tests are mostly CLI runs of a few steps, each a worker of its own (up to 16,
    # one a core; the GPU has room for them all; --tiny, where they skip: no workers to
    # start); -v names each test as it ends, so a part cut short still shows which one was
    # running
    workers = str(min(16, os.cpu_count() or 1))
    parallel = ["-n", workers] if importlib.util.find_spec("xdist") and not tiny else []
    chosen = ["-k", tests_k] if tests_k else []
    if "tests" in parts:
        # -p no:benchmark: the GPU machine's pytest-benchmark warned once a worker that xdist
        # turns it off (9 warnings of 2 lines in the H100's log)
        tests = part("tests", [py, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider",
                               "-p", "no:benchmark",
                               *parallel, *chosen, "-v", "-rA", "--durations=0"], out,
                     limits["tests"])  # fmt: skip
        tests["counts"] = test_counts(out / "tests.log")
        if tests_k:
            tests["selected"] = tests_k
        record["parts"]["tests"] = tests
        save()

    bench = [py, "benchmarks/train_throughput.py", "--skip-dsprites"]
    if tiny:
        bench += ["--tiny", "--cases", "mlp:64"]
    else:
        bench += ["--rounds", "2", "--seconds", "1.5", "--compile", "false"]
    if "bench" in parts:
        record["parts"]["bench"] = part(
            "bench", [*bench, "--out", str(figures / "bench.json")], out, limits["bench"]
        )
        record["throughput"] = (read_json(figures / "bench.json") or {}).get("throughput", [])
        save()
    # compiling costs most of a minute a variant: the one case that matters most, with CUDA
    # graphs (torch's default mode measured 23,058 images/s on the H200, 2026-12-04, against
    # 25,344 uncompiled: the step is bound by launching kernels, which graphs replay at once)
    if not tiny and "bench_compiled" in parts:
        compiled = [py, "benchmarks/train_throughput.py", "--skip-dsprites", "--rounds", "2",
                    "--seconds", "1.5", "--cases", "conv:256", "--compile", "reduce-overhead",
                    "--precision", "bf16-mixed", "--data-device", "cuda",
                    "--out", str(figures / "bench-compiled.json")]  # fmt: skip
        record["parts"]["bench_compiled"] = part(
            "bench_compiled", compiled, out, limits["bench_compiled"]
        )
        compiled_rows = (read_json(figures / "bench-compiled.json") or {}).get("throughput", [])
        record["throughput_compiled"] = compiled_rows
        save()

    stack = [py, "benchmarks/stack_throughput.py", "--out", str(figures / "stack.json")]
    if tiny:
        stack += ["--cases", "mlp:16", "--stacks", "1,2", "--steps", "1", "--warmup", "1"]
    elif gpu:  # a step takes milliseconds there: time more of them
        stack += ["--steps", "30", "--warmup", "5"]
    if "stack" in parts:
        record["parts"]["stack"] = part("stack", stack, out, limits["stack"])
        record["stacks"] = (read_json(figures / "stack.json") or {}).get("stacks", [])
        save()

    profiling = [py, "benchmarks/step_profile.py", "--out", str(figures / "profile.json")]
    if tiny:
        profiling += ["--steps", "2", "--warmup", "2"]
    if "profile" in parts:
        record["parts"]["profile"] = part("profile", profiling, out, limits["profile"])
        record["profiles"] = (read_json(figures / "profile.json") or {}).get("profiles", [])
        save()

    timing = [
        py,
        "benchmarks/metrics_timing.py",
        "--cache-dir",
        str(ROOT / "data"),
        "--json",
        str(figures / "metrics.json"),
    ]  # the cache (3 GiB) stays out of $OUT
    timing += ["--dci-points", "0"]  # the estimators' comparison is a CPU figure (make bench)
    timing += ["--jobs", "2" if tiny else "-1"]  # the classifiers on every core
    if tiny:
        timing += ["--encoder", "cheap", "--scale", "0.01", "--skip-floor"]
    if "metrics" in parts:
        record["parts"]["metrics"] = part("metrics", timing, out, limits["metrics"])
        record["metric_suite"] = read_json(figures / "metrics.json")
        save()
    if gpu and not tiny:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / name).write_text((out / name).read_text())
    shutil.rmtree(figures, ignore_errors=True)
    summary = {k: v["status"] for k, v in record["parts"].items()}
    counts = record["parts"].get("tests", {}).get("counts")
    print(f"[gpu-check] {summary}; tests {counts}; written {out / name}", flush=True)
    return 0 if all(v == "passed" for v in summary.values()) else 1


REPRODUCE_ROWS = ("beta_vae_b1", "beta_vae_b4", "beta_vae_b16", "factor_vae_g10",
                  "factor_vae_g40", "beta_tcvae_b1", "beta_tcvae_b6")  # fmt: skip
REPRODUCE_METRICS = "[mig,dci,sap,modularity,irs,unsupervised,beta_vae,factor_vae]"
COMPARE_ROWS = ("beta_vae", "beta_tcvae", "factor_vae", "ada_gvae", "qlae", "tripod")
# experiment -> (the key its rows set, the default rows, its sweep folder under paths.log_dir)
EXPERIMENTS = {
    "reproduce_dsprites": ("reproduce", REPRODUCE_ROWS, "reproduce/dsprites"),
    "compare_2024": ("model", COMPARE_ROWS, "compare_2024"),
}


# ``reproduce --tiny``: seconds on this CPU, the data rendered per image (no 3 GiB cache)
TINY_REPRODUCE = [
    "trainer=cpu", "size=small", "data.subset=2048", "evaluation.iwae_k=10",
    "evaluation.iwae_images=8", "evaluation.suite.num_train=200", "evaluation.suite.num_test=100",
    "evaluation.suite.num_variance_estimate=200", "evaluation.suite.batch_size=8",
    "figures.include=[]",
]  # fmt: skip


def piece_evaluation(experiment: str, first_row: str, overrides: list[str], folder: Path) -> str:
    """The end-of-run evaluation that ``experiment`` configures (with ``overrides`` of
    ``evaluation.*``) saved as ``folder/evaluation/<experiment>.yaml``, for ``src/eval.py``
    with ``VAELAB_CONFIG_PATH=folder``; returns its name."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    key = EXPERIMENTS[experiment][0]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"{key}={first_row}",
                                          *overrides])  # fmt: skip
    (folder / "evaluation").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg.evaluation, folder / "evaluation" / f"{experiment}.yaml")
    return experiment


def stop_at(jobs: dict, codes: dict, start: float, until: float, what: str) -> None:
    """Wait for the processes in ``jobs`` (name -> (process, log)) to end, up to ``until``
    seconds after ``start``; those still running then are killed. Exit codes go in ``codes``
    (None: stopped)."""
    while len(codes) < len(jobs) and time.monotonic() - start < until:
        for name, (proc, log) in jobs.items():
            if name not in codes and proc.poll() is not None:
                codes[name] = proc.returncode
                log.close()
                print(f"[reproduce] {name}: exit {proc.returncode} after "
                      f"{time.monotonic() - start:.0f} s", flush=True)  # fmt: skip
        time.sleep(1)
    for name, (proc, log) in jobs.items():
        if name not in codes:
            proc.kill()
            proc.wait()
            codes[name] = None
            log.close()
            print(f"[reproduce] {name}: stopped at the {what} deadline ({until:.0f} s)", flush=True)


def reproduce(out: Path, seed: int, rows: list[str] | None, train_seconds: int, deadline: float,
              metrics: str | None, extra: list[str], tiny: bool = False,
              experiment: str = "reproduce_dsprites",
              eval_seconds: float = 180) -> int:  # fmt: skip
    """Train ``rows`` of ``experiment`` (make reproduce's by default; None: all its rows) at
    once (one process each, no evaluation), then evaluate the completed ones one after another
    with every core (``src/eval.py sweep=``, the experiment's own evaluation), and report them.
    Training still running at ``deadline - eval_seconds`` is stopped, and the evaluation at
    ``deadline``: the jobs evaluated by then are in the report. The jobs run in ``out/work``;
    what comes back is ``out/<experiment>-seed<seed>.tar.gz`` (the job folders and logs
    without checkpoints) and ``out/report.md``: the device returns only a few files, two
    folders down at most. ``extra``: overrides of every job, ``evaluation.*`` ones of the
    evaluation."""
    import tarfile

    import torch

    key, all_rows, layout = EXPERIMENTS[experiment]
    rows = list(rows or all_rows)
    name = "reproduce" if experiment == "reproduce_dsprites" else experiment
    start = time.monotonic()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    # the dSprites cache (3 GiB) stays out of $OUT
    data_dir = Path(os.environ.get("VAELAB_DATA_DIR") or ROOT / "data")
    cores = max(1, (os.cpu_count() or 2) // len(rows))  # each training job's share of the CPU
    env = {**os.environ, "VAELAB_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    sys.path.insert(0, str(ROOT / "src"))
    from vaelab.data.dsprites import ProceduralDSprites

    cache = ProceduralDSprites(data_dir)
    if not tiny and cache.cache_path is not None and not cache.cache_path.exists():
        cache.write_cache()  # once, before the jobs start, rather than once per job
    print(f"[reproduce] dSprites cache ready after {time.monotonic() - start:.0f} s", flush=True)
    gpu = ["data.device=cuda"] if torch.cuda.is_available() and not tiny else []
    overrides = [*(TINY_REPRODUCE if tiny else []), *extra]
    scoring = [o for o in overrides if o.lstrip("+~").startswith("evaluation.")]
    training = [o for o in overrides if o not in scoring]
    scoring += [f"evaluation.disentanglement={metrics}"] if metrics else []
    evaluation = piece_evaluation(experiment, rows[0], scoring, work / "conf")
    minutes, secs = divmod(train_seconds, 60)
    max_time = f"00:{minutes // 60:02d}:{minutes % 60:02d}:{secs:02d}"  # DD:HH:MM:SS
    jobs = {}
    for row in rows:
        folder = work / layout / f"{row}_seed={seed}"  # the sweep's layout
        cmd = [sys.executable, "src/train.py", f"experiment={experiment}",
               f"{key}={row}", f"seed={seed}", f"hydra.run.dir='{folder}'",
               f"+trainer.max_time='{max_time}'", "evaluation=none", *gpu,
               *training]  # fmt: skip
        log = open(work / f"{row}_seed={seed}.log", "w")  # noqa: SIM115 - closed when it ends
        jobs[row] = (subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      env={**env, "OMP_NUM_THREADS": str(cores)}), log)  # fmt: skip
    print(f"[reproduce] {len(jobs)} jobs started: {' '.join(rows)}", flush=True)
    codes: dict[str, int | None] = {}
    stop_at(jobs, codes, start, deadline - eval_seconds, "training")
    sweep = work / layout
    score = [sys.executable, "src/eval.py", f"sweep={sweep}", f"evaluation={evaluation}",
             "evaluation.suite.jobs=-1"]  # fmt: skip
    scored: dict[str, int | None] = {}
    log = open(work / "evaluation.log", "w")  # noqa: SIM115 - closed by stop_at
    process = subprocess.Popen(score, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**env, "VAELAB_CONFIG_PATH": str(work / "conf")})  # fmt: skip
    print(f"[reproduce] evaluating the completed jobs (evaluation={evaluation})", flush=True)
    stop_at({"evaluation": (process, log)}, scored, start, deadline, "evaluation")
    by = [] if experiment == "reproduce_dsprites" else ["--by", key]
    subprocess.run([sys.executable, "src/report.py", str(sweep), *by], cwd=ROOT, env=env)

    # checkpoints (9 MB each; a job stopped while saving leaves .last.ckpt.tmp<pid>) stay
    # behind: the device returns files of 16 MiB at most, and the metrics and figures are small
    def small(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if ".ckpt" in info.name or info.size > 2**20 else info

    with tarfile.open(out / f"{name}-seed{seed}.tar.gz", "w:gz") as tar:
        tar.add(work, arcname=f"{name}-seed{seed}", filter=small)
    if (sweep / "report.md").is_file():
        shutil.copy(sweep / "report.md", out / "report.md")
    shutil.rmtree(work)
    print(f"[reproduce] done after {time.monotonic() - start:.0f} s: {codes}, "
          f"evaluation {scored['evaluation']}", flush=True)  # fmt: skip
    return 0 if all(code == 0 for code in [*codes.values(), *scored.values()]) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("gather", "run", "reproduce"), default=None,
                        help="default: run where a CUDA GPU is, else gather")  # fmt: skip
    parser.add_argument("--tiny", action="store_true", help="run, reproduce: a quick CPU version")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run: folder for logs and JSON (default $OUT, else outputs/gpu-check)",
    )
    parser.add_argument("--seed", type=int, default=0, help="reproduce: the seed of every row")
    parser.add_argument("--experiment", default="reproduce_dsprites", choices=EXPERIMENTS,
                        help="reproduce: make reproduce's rows or compare_2024's")  # fmt: skip
    parser.add_argument("--rows", default=None, help="reproduce: the rows (default: all)")
    parser.add_argument("--train-seconds", type=int, default=300, help="reproduce: per job")
    parser.add_argument("--deadline", type=float, default=540, help="reproduce: seconds in all")
    parser.add_argument("--eval-seconds", type=float, default=180,
                        help="reproduce: the last seconds, for evaluating")  # fmt: skip
    parser.add_argument(
        "--metrics",
        default=None,
        help="reproduce: evaluation.disentanglement (default: reproduce_dsprites "
        f"{REPRODUCE_METRICS}, compare_2024 the experiment's own)",
    )
    parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                        help=f"run: which parts, of {','.join(PARTS)}")  # fmt: skip
    parser.add_argument("--tests-k", default=None, help="run: pytest -k for the GPU tests")
    parser.add_argument("--limits", default=None,
                        help="run: part=seconds,... in place of the default limits")  # fmt: skip
    args, extra = parser.parse_known_args()
    mode = args.mode
    if mode is None:
        import torch

        mode = "run" if torch.cuda.is_available() else "gather"
    if mode == "gather":
        gather()
        return
    out = args.out or Path(os.environ.get("OUT") or ROOT / "outputs" / "gpu-check")
    if mode == "reproduce":  # further arguments: Hydra overrides of every job
        metrics = args.metrics
        if metrics is None and args.experiment == "reproduce_dsprites":
            metrics = REPRODUCE_METRICS
        rows = args.rows.split(",") if args.rows else None
        sys.exit(reproduce(out, args.seed, rows, args.train_seconds, args.deadline, metrics,
                           extra, args.tiny, args.experiment, args.eval_seconds))  # fmt: skip
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    parts = tuple(p for p in args.parts.split(",") if p)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}: choose from {','.join(PARTS)}")
    limits = dict(item.split("=") for item in args.limits.split(",")) if args.limits else {}
    if unknown := set(limits) - set(PARTS):
        parser.error(f"unknown parts in --limits {sorted(unknown)}")
    sys.exit(run(out, args.tiny, parts, args.tests_k, {k: float(v) for k, v in limits.items()}))


if __name__ == "__main__":
    main()
