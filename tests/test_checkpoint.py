"""vaelab.checkpoint in-process: atomic writes, the safe reader and its refusals, the shape
check, loading weights, and which earlier run a command resumes."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from vaelab.checkpoint import (
    AtomicCheckpointIO,
    check_checkpoint,
    find_resumable,
    load_weights,
    read_checkpoint,
)
from vaelab.errors import ConfigError


class Crafted:
    """A class a pickle may name: loading it with the full unpickler would build one."""

    def __reduce__(self):
        return (os.getcwd, ())


def net(out: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(2, out)


def saved(path: Path, **checkpoint) -> Path:
    torch.save(checkpoint, path)
    return path


def test_atomic_save_writes_the_file_and_leaves_no_temporary(tmp_path: Path):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"  # two folders that do not exist yet
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_save_that_fails_keeps_the_previous_checkpoint_whole(tmp_path: Path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "global_step": 3}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for a lambda
        io.save_checkpoint({"state_dict": {}, "bad": lambda: 0}, path)
    assert read_checkpoint(path)["global_step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_storage_options_reach_lightnings_writer_which_refuses_them(tmp_path: Path):
    with pytest.raises(TypeError, match="storage_options"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "a.ckpt", {"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_read_checkpoint_returns_plain_contents(tmp_path: Path):
    path = saved(tmp_path / "a.ckpt", state_dict={"w": torch.arange(3.0)}, global_step=7)
    checkpoint = read_checkpoint(path)
    assert checkpoint["global_step"] == 7 and torch.equal(checkpoint["state_dict"]["w"],
                                                          torch.arange(3.0))  # fmt: skip


def test_a_pickled_object_is_refused_naming_the_class_unless_allowed(tmp_path: Path, caplog):
    path = saved(tmp_path / "crafted.ckpt", state_dict={}, payload=Crafted())
    with pytest.raises(ConfigError) as error:
        read_checkpoint(path)
    assert "holds a `posix.getcwd` object" in str(error.value)
    assert "allow_unsafe_checkpoints=true" in str(error.value)
    with caplog.at_level(logging.WARNING, logger="vaelab.checkpoint"):
        checkpoint = read_checkpoint(path, allow_unsafe=True)
    assert checkpoint["payload"] == os.getcwd()  # the full unpickler ran the stored call
    assert "runs any code stored in the file" in caplog.text and str(path) in caplog.text


def test_a_safe_read_logs_no_warning(tmp_path: Path, caplog):
    path = saved(tmp_path / "a.ckpt", state_dict={})
    with caplog.at_level(logging.WARNING, logger="vaelab.checkpoint"):
        read_checkpoint(path)
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "(EOFError: )"),
        (b"not a zip file at all", "(UnpicklingError: not a pickle torch can read)"),
        (b"a text file\n", "(IndexError: "),
        (b"PK\x03\x04 part", "(RuntimeError: PytorchStreamReader failed"),
        (None, "(RuntimeError: PytorchStreamReader failed"),
    ],
)
def test_unreadable_files_are_one_config_error(tmp_path: Path, content: bytes | None, reason):
    path = tmp_path / "broken.ckpt"
    if content is None:  # a real checkpoint cut in half
        saved(path, state_dict={"w": torch.zeros(1000)})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        read_checkpoint(path)
    assert str(error.value).startswith(f"`ckpt_path`={path} cannot be read as a checkpoint ")
    assert reason in str(error.value) and "may be truncated" in str(error.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read as a checkpoint"):
        read_checkpoint(tmp_path / "nope.ckpt")


@pytest.mark.parametrize("content", [{"weights": {}}, {"state_dict": [1, 2]}, [1, 2]])
def test_a_file_without_a_state_dict_is_refused(tmp_path: Path, content):
    torch.save(content, tmp_path / "x.ckpt")
    with pytest.raises(ConfigError, match="holds no model weights"):
        read_checkpoint(tmp_path / "x.ckpt")


def test_load_weights_checks_then_loads_and_returns_the_step(tmp_path: Path):
    source, target = net(), nn.Linear(2, 3)
    path = saved(tmp_path / "a.ckpt", state_dict=source.state_dict(), global_step=12)
    assert load_weights(path, target) == 12
    loaded = target.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.state_dict().items())
    no_step = saved(tmp_path / "b.ckpt", state_dict=source.state_dict())
    assert load_weights(no_step, nn.Linear(2, 3)) == 0


def test_shape_mismatch_missing_and_unexpected_tensors_are_counted_and_named(tmp_path: Path):
    state = net(4).state_dict()  # weight (4, 2) and bias (4,) against (3, 2) and (3,)
    path = saved(tmp_path / "a.ckpt", state_dict={**state, "extra": torch.zeros(1)})
    target = nn.Linear(2, 3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError) as error:
        load_weights(path, target)
    message = str(error.value)
    assert message.startswith(f"`ckpt_path`={path} was trained with a different architecture")
    assert "(3 tensors differ: weight (4, 2) vs (3, 2); bias (4,) vs (3,); extra unexpected)" in (
        message
    )
    assert "same model, arch and size" in message
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # untouched
    path = saved(tmp_path / "b.ckpt", state_dict={"weight": torch.zeros(3, 2)})
    with pytest.raises(ConfigError, match=r"1 tensors differ: bias missing vs \(3,\)\)") as error:
        check_checkpoint(path, nn.Linear(2, 3))
    assert str(error.value).startswith(f"`ckpt_path`={path} was trained")
    check_checkpoint(saved(tmp_path / "c.ckpt", state_dict=net().state_dict()), net())


def run_folder(log_dir: Path, name: str, overrides: list[str], status: str | None = None,
               age: float = 0.0) -> Path:  # fmt: skip
    """A run folder as train.py leaves it: .hydra/overrides.yaml, last.ckpt, metrics.json."""
    run = log_dir / "runs" / "day" / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / "checkpoints").mkdir()
    last = run / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": {}}, last)
    stamp = time.time() - 1000 + age
    os.utime(last, (stamp, stamp))
    if status:
        (run / "metrics.json").write_text(json.dumps({"status": status}))
    return run


def test_the_newest_unfinished_run_of_the_same_overrides_is_resumed(tmp_path: Path):
    overrides = ["beta=4", "seed=1"]
    run_folder(tmp_path, "old", overrides, "running", age=1)
    newest = run_folder(tmp_path, "new", ["seed=1", "beta=4", "ckpt_path=x"], "running", age=2)
    run_folder(tmp_path, "other", ["beta=8", "seed=1"], "running", age=3)
    current = tmp_path / "runs" / "day" / "current"
    found = find_resumable(tmp_path, [*overrides, "resume=true"], exclude=current)
    assert found == newest / "checkpoints" / "last.ckpt"
    # the folder of the command itself is never its own earlier run
    assert find_resumable(tmp_path, overrides, exclude=newest) == (
        tmp_path / "runs" / "day" / "old" / "checkpoints" / "last.ckpt"
    )


def test_nothing_is_resumed_when_the_newest_run_completed_or_none_matches(tmp_path: Path):
    run_folder(tmp_path, "unfinished", ["beta=4"], "running", age=1)
    run_folder(tmp_path, "done", ["beta=4"], "completed", age=2)
    here = tmp_path / "here"
    assert find_resumable(tmp_path, ["beta=4"], exclude=here) is None
    assert find_resumable(tmp_path, ["beta=2"], exclude=here) is None
    assert find_resumable(tmp_path / "empty", ["beta=4"], exclude=here) is None
    # a run killed before writing metrics.json is unfinished
    killed = run_folder(tmp_path, "killed", ["beta=4"], age=3)
    assert (
        find_resumable(tmp_path, ["beta=4"], exclude=here) == killed / "checkpoints" / "last.ckpt"
    )


def test_a_run_still_training_elsewhere_or_with_an_unreadable_record_is_not_taken_over(
    tmp_path: Path,
):
    here = tmp_path / "here"
    older = run_folder(tmp_path, "older", ["beta=4"], "running", age=1)
    live = run_folder(tmp_path, "live", ["beta=4"], age=2)
    with subprocess.Popen(["sleep", "60"]) as other:  # a live process on this host
        record = {"status": "running", "pid": other.pid, "host": socket.gethostname()}
        (live / "metrics.json").write_text(json.dumps(record))
        try:
            assert find_resumable(tmp_path, ["beta=4"], exclude=here) is None
        finally:
            other.kill()
    # the process has ended (Popen's exit waits for it): the run is unfinished, resumed
    assert find_resumable(tmp_path, ["beta=4"], exclude=here) == live / "checkpoints" / "last.ckpt"
    (live / "metrics.json").write_text("{truncated")
    assert find_resumable(tmp_path, ["beta=4"], exclude=here) is None
    assert older.is_dir() and (live / "metrics.json").read_text() == "{truncated"  # untouched


def test_prefixed_resume_settings_are_ignored_and_a_run_without_a_checkpoint_is_none(
    tmp_path: Path,
):
    run = run_folder(tmp_path, "a", ["beta=4", "+ckpt_path=x", "~resume"], "running")
    here = tmp_path / "here"
    assert find_resumable(tmp_path, ["beta=4"], exclude=here) is not None
    (run / "checkpoints" / "last.ckpt").unlink()
    assert find_resumable(tmp_path, ["beta=4"], exclude=here) is None


def test_settings_outside_the_fingerprint_do_not_keep_a_run_from_being_resumed(tmp_path: Path):
    """What config_hash leaves out (how to start, where the suite's classifiers fit, the
    weights' memory layout) does not make another run here either."""
    run = run_folder(tmp_path, "a", ["beta=4", "arch.channels_last=false",
                                     "evaluation.suite.jobs=2"], "running")  # fmt: skip
    here = tmp_path / "here"
    for given in (["beta=4"], ["beta=4", "allow_unsafe_checkpoints=true"],
                  ["beta=4", "evaluation.suite.jobs=auto", "arch.channels_last=true"]):  # fmt: skip
        assert find_resumable(tmp_path, given, exclude=here) == run / "checkpoints" / "last.ckpt"
    computed = ["beta=4", "evaluation.suite.num_train=10"]  # a setting of what is computed
    assert find_resumable(tmp_path, computed, exclude=here) is None


def test_a_long_mismatch_shows_three_tensors_and_two_unexpected_ones(tmp_path: Path):
    wide = nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 5), nn.Linear(5, 1))  # 6 tensors
    state = {k: torch.zeros(7) for k in wide.state_dict()}  # no shape fits
    state.update({f"extra{i}": torch.zeros(1) for i in range(3)})
    with pytest.raises(ConfigError) as error:
        check_checkpoint(saved(tmp_path / "a.ckpt", state_dict=state), wide)
    shown = str(error.value).split("tensors differ: ")[1].split("). Resume")[0]
    assert "9 tensors differ" in str(error.value)
    assert shown.count(" vs ") == 3 and shown.count("unexpected") == 2


def test_the_unsafe_choice_reaches_the_reader_when_checking_and_loading(tmp_path: Path):
    target = net()
    path = saved(tmp_path / "a.ckpt", state_dict=target.state_dict(), payload=Crafted())
    with pytest.raises(ConfigError, match=r"holds a `posix\.getcwd` object"):
        check_checkpoint(path, target)
    with pytest.raises(ConfigError, match=r"holds a `posix\.getcwd` object"):
        load_weights(path, target)
    check_checkpoint(path, target, allow_unsafe=True)
    assert load_weights(path, target, allow_unsafe=True) == 0


def test_optimizer_moments_restored_from_an_nchw_checkpoint_take_the_nhwc_weights_strides(cli):
    """A checkpoint from before the conv weights were NHWC holds NCHW Adam moments; resumed
    under NHWC weights they are laid out as the weights (foreach Adam's fast path on a GPU)."""
    old_dir, old = cli("arch.channels_last=false", name="nchw")
    assert old.returncode == 0, old.stderr[-3000:]
    ckpt = old_dir / "checkpoints" / "last.ckpt"

    def moments(path: Path) -> list[torch.Tensor]:
        states = torch.load(path, map_location="cpu", weights_only=True)["optimizer_states"][0]
        return [t for s in states["state"].values() for k, t in s.items()
                if k.startswith("exp_avg") and t.dim() == 4 and t.shape[1] > 1]  # fmt: skip

    assert moments(ckpt) and not any(m.is_contiguous(memory_format=torch.channels_last)
                                     for m in moments(ckpt))  # fmt: skip
    new_dir, new = cli(f"ckpt_path={ckpt}", "trainer.max_steps=8", name="nhwc")
    assert new.returncode == 0, new.stderr[-3000:]
    resumed = moments(new_dir / "checkpoints" / "last.ckpt")
    assert len(resumed) == len(moments(ckpt))
    assert all(m.is_contiguous(memory_format=torch.channels_last) for m in resumed)
