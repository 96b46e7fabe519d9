"""Every schedule's value at chosen steps, and the β the objective trains with."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from vaelab.module import VAEModule
from vaelab.nets import MLPDecoder, MLPEncoder
from vaelab.objectives import BetaVAE
from vaelab.schedules import Constant, Cyclical, Linear


def test_constant():
    assert [Constant(4)(t) for t in (0, 10, 10**6)] == [4.0, 4.0, 4.0]


def test_linear_warm_up():
    s = Linear(start=0.0, end=4.0, steps=100)
    assert [s(t) for t in (0, 25, 50, 100, 5000)] == [0.0, 1.0, 2.0, 4.0, 4.0]
    assert Linear(end=1.0, steps=10, start=2.0)(5) == pytest.approx(1.5)


def test_cyclical_rises_over_ratio_of_each_cycle_then_holds():
    s = Cyclical(end=1.0, total_steps=400, cycles=4, ratio=0.5)  # period 100, rise over 50
    assert [s(t) for t in (0, 25, 50, 75, 99, 100, 125, 399)] == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 1.0, 0.0, 0.5, 1.0]
    )


def test_the_shortest_schedules_are_allowed():
    assert [Linear(end=3.0, steps=1)(t) for t in (0, 1, 2)] == [0.0, 3.0, 3.0]
    assert Cyclical(end=2.0, total_steps=1, cycles=1)(0) == 0.0


def test_cyclical_defaults_and_a_start_above_zero():
    default = Cyclical(end=1.0, total_steps=400)  # 4 cycles, rising over half of each
    explicit = Cyclical(end=1.0, total_steps=400, cycles=4, ratio=0.5, start=0.0)
    assert [default(t) for t in range(0, 400, 7)] == [explicit(t) for t in range(0, 400, 7)]
    s = Cyclical(start=2.0, end=6.0, total_steps=100, cycles=1, ratio=1.0)  # the edges allowed
    assert [s(t) for t in (0, 25, 50, 99)] == pytest.approx([2.0, 3.0, 4.0, 5.96])


@pytest.mark.parametrize(
    "make",
    [
        lambda: Linear(end=1, steps=0),
        lambda: Cyclical(end=1, total_steps=10, ratio=0),
        lambda: Cyclical(end=1, total_steps=10, ratio=1.01),
        lambda: Cyclical(end=1, total_steps=-1),
        lambda: Cyclical(end=1, total_steps=0),
        lambda: Cyclical(end=1, total_steps=10, cycles=0),
    ],
)
def test_bad_schedule_settings_are_errors(make):
    with pytest.raises(ValueError, match="needs"):
        make()


class RecordingBetaVAE(BetaVAE):
    """β-VAE that remembers the β of every training call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def regularizer(self, out, parts, beta, step):
        if self.training:
            self.seen.append(beta)
        return super().regularizer(out, parts, beta, step)


def test_the_objective_trains_with_the_scheduled_beta_of_each_step():
    torch.manual_seed(0)
    objective = RecordingBetaVAE()
    module = VAEModule(
        MLPEncoder((1, 4, 4), 8, 2), MLPDecoder((1, 4, 4), 8, 2), objective,
        Linear(start=0.0, end=4.0, steps=4), lambda p: torch.optim.SGD(p, lr=1e-3), latent_dim=2,
    )  # fmt: skip
    images = torch.randint(0, 256, (48, 1, 4, 4), dtype=torch.uint8)
    trainer = L.Trainer(max_steps=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader(images, batch_size=8))
    assert objective.seen == [0.0, 1.0, 2.0, 3.0, 4.0, 4.0]
