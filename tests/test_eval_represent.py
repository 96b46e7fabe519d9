"""Any model's representation scored by the suite: ``vaelab.metrics.evaluate(represent, ...)``
and ``python src/eval.py represent=<module>:<function>``. Known answers (the true factors
against an independent MIG, constant and noise codes), the Python API and the CLI writing
the same JSON, a trained model's encoder giving ``src/eval.py run=``'s values, bad input."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from vaelab.data.files import file_digest
from vaelab.errors import ConfigError
from vaelab.metrics import evaluate
from vaelab.metrics.representation import load_represent
from vaelab.metrics.suite import draw_suite, make_config

from .conftest import PROGRAMS, ROOT, TINY, run_cli, run_program
from .metrics.toy import STEP, ToySource

pytestmark = pytest.mark.programs

SMALL = {"num_train": 200, "num_test": 100}
SUITE_ARGS = ["evaluation=fast", "evaluation.suite.num_train=200", "evaluation.suite.num_test=100"]
CHEAP = ["mig", "sap", "modularity", "irs", "unsupervised"]  # no boosted trees: seconds
HERE = "tests.test_eval_represent"
NOT_CALLABLE = 3


def true_factors(x: torch.Tensor) -> torch.Tensor:
    """The toy source's factor classes, read off its images (pixel k = STEP * class_k)."""
    return x.flatten(1).double() / STEP


def centroid_features(x: torch.Tensor) -> np.ndarray:
    """A hand-made code of dSprites: the sprite's centroid (x, y) and sqrt of its area."""
    pixels = x.double().flatten(2)[:, 0] / 255.0
    mass = pixels.sum(1)
    cols, rows = torch.arange(64.0).repeat(64), torch.arange(64.0).repeat_interleave(64)
    centre = torch.stack([(pixels * cols).sum(1), (pixels * rows).sum(1)], 1) / mass[:, None]
    return torch.cat([centre, mass.sqrt()[:, None]], 1).numpy()


def interrupted(x: torch.Tensor) -> torch.Tensor:
    raise KeyboardInterrupt  # what Ctrl-C raises while the codes are computed


def wrong_shape(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(x))


def nan_codes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    codes = torch.zeros(len(x), 2)
    codes[0, 1] = float("nan")
    return codes, codes


def scores(values: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if "/time/" not in k}


def dci_disentanglement(values: dict[str, float]) -> float:
    """DCI's D under either key form (``disent/dci_d`` or ``disent/dci[gbt]/d``)."""
    (key,) = [k for k in values if re.fullmatch(r"disent/dci(\[gbt\])?[/_]d", k)]
    return values[key]


def reference_mig(factors: np.ndarray) -> float:
    """MIG of codes equal to the factor classes (each class its own bin), from sklearn's
    discrete MI: mean over factors k of (I(z_k; v_k) - max_{j != k} I(z_j; v_k)) / H(v_k)."""
    gaps = []
    for k in range(factors.shape[1]):
        mi = sorted(
            mutual_info_score(factors[:, j], factors[:, k]) for j in range(factors.shape[1])
        )
        gaps.append((mi[-1] - mi[-2]) / mutual_info_score(factors[:, k], factors[:, k]))
    return float(np.mean(gaps))


def test_true_factors_score_one_and_constant_or_noise_codes_zero():
    source = ToySource()
    true = evaluate(true_factors, data=source, metrics=["mig", "dci"], seed=3, **SMALL)
    drawn = draw_suite(source, 3, ["mig"], make_config(**SMALL))["codes"].train
    assert true["metrics"]["disent/mig"] == pytest.approx(reference_mig(drawn), abs=1e-12)
    assert true["metrics"]["disent/mig"] > 0.9 and dci_disentanglement(true["metrics"]) > 0.95
    assert true["represent"] == f"{HERE}:true_factors" and true["represent_sha256"] is None
    assert true["data"] == "toy" and true["settings"]["seed"] == 3

    constant = evaluate(lambda x: np.zeros((len(x), 3)), data=source, metrics=["mig"], **SMALL)
    assert constant["metrics"]["disent/mig"] == 0.0
    gen = torch.Generator().manual_seed(0)
    noise = evaluate(lambda x: torch.randn(len(x), 3, generator=gen), data=source,
                     metrics=["mig", "dci"], **SMALL)  # fmt: skip
    assert noise["metrics"]["disent/mig"] < 0.1 and dci_disentanglement(noise["metrics"]) < 0.2


def test_a_tuple_gives_its_first_element_and_settings_reach_the_suite():
    source = ToySource()
    plain = evaluate(true_factors, data=source, metrics=["mig"], **SMALL)
    named = evaluate(true_factors, data=source, metrics="mig", **SMALL)  # one name, not letters
    assert scores(named["metrics"]) == scores(plain["metrics"])
    paired = evaluate(lambda x: (true_factors(x), None), data=source, metrics=["mig"], **SMALL)
    assert scores(paired["metrics"]) == scores(plain["metrics"])
    assert plain["settings"]["suite"]["num_train"] == 200
    assert plain["metrics"]["disent/encoded_images"] == 120  # every toy image, once
    with pytest.raises(TypeError, match="unknown disentanglement settings"):
        evaluate(true_factors, data=source, metrics=["mig"], num_trian=5)


def eval_script(args: list[str], data: Path, monkeypatch) -> object:
    """``python src/eval.py <args>`` in this process (run_program with src/eval.py's main)."""
    spec = importlib.util.spec_from_file_location("vaelab_src_eval", ROOT / "src" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "vaelab_src_eval", module)
    monkeypatch.setitem(PROGRAMS, "eval.py", "vaelab_src_eval")
    return run_program("eval.py", args, {"VAELAB_DATA_DIR": str(data)})


def test_the_python_api_and_the_cli_write_the_same_json(tmp_path: Path, monkeypatch):
    data, spec = tmp_path / "data", f"{HERE}:centroid_features"
    cli = eval_script([f"represent={spec}", "data=dsprites", f"out={tmp_path / 'cli'}",
                       *SUITE_ARGS, f"evaluation.disentanglement=[{','.join(CHEAP)}]",
                       "seed=2"], data, monkeypatch)  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    monkeypatch.setenv("VAELAB_DATA_DIR", str(data))
    api = evaluate(spec, data="dsprites", metrics=CHEAP, seed=2, out=tmp_path / "api", **SMALL)

    files = {}
    for side in ("cli", "api"):
        files[side] = {name: json.loads((tmp_path / side / name).read_text())
                       for name in ("evaluation/fast.json", "metrics.json")}  # fmt: skip
    cli_record, api_record = (
        files["cli"]["evaluation/fast.json"],
        files["api"]["evaluation/fast.json"],
    )
    assert api_record == json.loads(json.dumps(api))  # what evaluate returned is what it wrote
    assert scores(cli_record["metrics"]) == scores(api_record["metrics"])  # exactly
    assert cli_record["metrics"]["disent/mig"] > 0.2  # the centroid finds pos_x, pos_y
    same = ("status", "evaluation", "represent", "represent_sha256", "data", "settings")
    assert {k: cli_record[k] for k in same} == {k: api_record[k] for k in same}
    assert set(cli_record) == set(api_record)
    assert cli_record["settings"] == {"disentanglement": CHEAP, "seed": 2,
                                      "suite": {**SMALL, "dci_estimator": "hist"}}  # fmt: skip
    merged = files["cli"]["metrics.json"]
    assert merged["status"] == "completed" and merged["represent"] == spec
    assert merged["evaluations"]["fast"]["file"] == "evaluation/fast.json"
    assert merged["metrics"] == cli_record["metrics"]
    assert (tmp_path / "cli" / "eval.log").is_file()


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_a_torchscript_file_is_recorded_with_its_digest(tmp_path: Path, monkeypatch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4096, 4))
    scripted = torch.jit.script(_Scaled(net))
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path))
    data = tmp_path / "data"
    args = [f"represent={path}", f"out={tmp_path / 'cli'}", *SUITE_ARGS, "device=cpu"]
    cli = eval_script([*args, "evaluation.disentanglement=[mig,sap]"], data, monkeypatch)
    assert cli.returncode == 0, cli.stderr[-3000:]
    record = json.loads((tmp_path / "cli" / "evaluation" / "fast.json").read_text())
    assert record["represent_sha256"] == file_digest(path) and record["data"] == "dsprites"
    monkeypatch.setenv("VAELAB_DATA_DIR", str(data))
    api = evaluate(scripted, metrics=["mig", "sap"], **SMALL)  # the module itself
    assert scores(api["metrics"]) == scores(record["metrics"])


class _Scaled(torch.nn.Module):
    """A network on x = images / 255, as a model trained on floats takes them."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float() / 255.0)


def test_a_trained_models_encoder_gives_the_values_of_eval_run(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    trained = run_cli(run_dir, *TINY, "~callbacks.progress", "figures.include=[]", process=False)
    assert trained.returncode == 0, trained.stderr[-3000:]
    chosen = f"evaluation.disentanglement=[{','.join(CHEAP)}]"
    args = [
        f"run={run_dir}",
        *SUITE_ARGS,
        chosen,
        "evaluation.iwae_k=0",
        "evaluation.quality_images=0",
    ]
    by_run = run_program("eval.py", args, {"VAELAB_DATA_DIR": str(tmp_path / "data")})
    assert by_run.returncode == 0, by_run.stderr[-3000:]
    expected = json.loads((run_dir / "evaluation" / "fast.json").read_text())["metrics"]

    import vaelab

    run = vaelab.load_run(run_dir, device="cpu")
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tmp_path / "data"))
    mine = evaluate(lambda x: run.encode(x)[0], metrics=CHEAP, seed=0, **SMALL)
    assert scores(mine["metrics"]) == scores(expected)  # exactly
    assert expected["disent/mig"] >= 0 and len(scores(expected)) >= 8


BAD = [
    ("represent=no_such_module_here:f", "the module no_such_module_here cannot be imported"),
    (f"represent={HERE}:missing", f"{HERE} has no attribute 'missing'"),
    (f"represent={HERE}:NOT_CALLABLE", "is an int, not a callable"),
    ("represent=/no/such/model.pt", "names no file (/no/such/model.pt does not exist)"),
    ("represent=model_without_colon", "is not <module>:<function> and names no file"),
    (f"represent={HERE}:wrong_shape", "returned shape (64,) for a uint8 image batch of shape"),
    (f"represent={HERE}:nan_codes", "returned NaN or infinite codes for 1 of 64 images"),
    (f"represent={HERE}:true_factors run=outputs", "represent= and run= cannot go together"),
    (f"represent={HERE}:true_factors sweep=outputs", "represent= and sweep= cannot go together"),
    (f"represent={HERE}:true_factors data=mnist", "mnist has no ground-truth factors"),
    ("run=outputs data=dsprites", "data= goes with represent=<module>:<function>"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_represent_exits_2_with_one_paragraph(tmp_path, monkeypatch, args, message):
    args = [
        *args.split(),
        f"out={tmp_path / 'out'}",
        *SUITE_ARGS,
        "evaluation.disentanglement=[mig]",
    ]
    result = eval_script(args, tmp_path / "data", monkeypatch)
    assert result.returncode == 2, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and message in error[0], result.stderr[-3000:]
    assert not (tmp_path / "out").exists()  # no folder, log or evaluation/ left behind


def test_ctrl_c_is_one_line_and_the_shells_status(tmp_path, monkeypatch):
    args = [f"represent={HERE}:interrupted", f"out={tmp_path / 'out'}", *SUITE_ARGS,
            "evaluation.disentanglement=[mig]"]  # fmt: skip
    result = eval_script(args, tmp_path / "data", monkeypatch)
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr  # it was Python's 85-line KeyboardInterrupt
    assert result.stderr.strip().splitlines()[-1].startswith("interrupted: the evaluations")


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_reading_a_torchscript_file_prints_no_warning_of_torch(tmp_path: Path):
    """torch's FutureWarning that TorchScript is deprecated came before every represent=<file>
    output, even an error: it is not the user's to act on."""
    path = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(torch.nn.Flatten()), str(path))  # the user's code warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        represent, digest = load_represent(str(path), torch.device("cpu"))
    assert digest == file_digest(path) and represent(torch.zeros(2, 1, 2, 2)).shape == (2, 4)


def test_a_misspelt_option_of_evaluate_says_the_nearest_one():
    with pytest.raises(ConfigError, match=r"data=dsprite names no config: .* mean dsprites\?"):
        evaluate(true_factors, data="dsprite")
    with pytest.raises(ConfigError, match=r"evaluation=ful names no config: .* Did you mean full"):
        evaluate(true_factors, evaluation="ful")
