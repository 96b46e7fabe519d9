"""Time vaelab's disentanglement metrics against disent 0.8's on the same data and encoder.

Both libraries run in one process, one after the other, on procedural dSprites (all
737,280 images held in memory once, shared by both) and the same random conv encoder
(``ConvEncoder((1, 64, 64), 10)`` after ``torch.manual_seed(0)``, its mu rescaled to unit
spread so FactorVAE prunes no latent). Metrics both have: MIG, DCI, SAP, FactorVAE
(disent 0.8 has no BetaVAE score and no modularity). Never fails on time.

Install (a separate venv, so vaelab's own .venv is untouched)::

    python3 -m venv /tmp/disent-venv
    /tmp/disent-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/disent-venv/bin/pip install "disent==0.8.*"          # -> disent 0.8.0, deps resolve
    /tmp/disent-venv/bin/pip install -e /work/main --no-deps
    /tmp/disent-venv/bin/pip install matplotlib hydra-core omegaconf rich

Run (from the repository root)::

    /tmp/disent-venv/bin/python benchmarks/disent_comparison.py [--scale 1] \\
        [--metrics mig dci sap factor_vae] [--cache-dir data] [--dci-estimator hist|sklearn]
        [--threads N]   # 1 keeps a shared, busy 2-core box from stalling OpenMP at batch 64

``--scale`` multiplies both libraries' sample counts (default: disentanglement_lib's, which
are also disent's defaults: 10,000 train / 5,000 test points, 10,000 variance points);
below 1 the disent times are also shown extrapolated linearly to scale 1.

Columns: ``vaelab suite`` is the metric's scoring time inside one ``run_suite`` call (the
suite's single encoding pass is its own row); ``vaelab alone`` adds the time to encode the
distinct images of that metric's own draws, i.e. what the metric costs run on its own;
``disent`` is one ``disent.metrics.metric_*`` call, which samples and encodes as it goes.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from torch import nn

from vaelab.data.dsprites import ProceduralDSprites
from vaelab.metrics.codes import encode_table
from vaelab.metrics.suite import draw_suite, make_config, needed_indices, run_suite
from vaelab.nets.conv import ConvEncoder

warnings.filterwarnings("ignore", message="failed to JIT compile")  # disent without numba
from disent.dataset import DisentDataset  # noqa: E402
from disent.dataset.data import ArrayGroundTruthData  # noqa: E402
from disent.dataset.transform import ToImgTensorF32  # noqa: E402
from disent.metrics import metric_dci, metric_factor_vae, metric_mig, metric_sap  # noqa: E402

METRICS = ("mig", "dci", "sap", "factor_vae")
# (vaelab value key, disent value key) per metric
VALUES = {
    "mig": [("mig", "mig.discrete_score")],
    "dci": [("dci[gbt]/d", "dci.disentanglement"), ("dci[gbt]/c", "dci.completeness"),
            ("dci[gbt]/i_train", "dci.informativeness_train"),
            ("dci[gbt]/i_test", "dci.informativeness_test")],
    "sap": [("sap", "sap.score")],
    "factor_vae": [("factor_vae_train", "factor_vae.train_accuracy"),
                   ("factor_vae_eval", "factor_vae.eval_accuracy"),
                   ("factor_vae_active_dims", "factor_vae.num_active_dims")],
}  # fmt: skip


class Rescaled(nn.Module):
    """mu / std(mu), the std measured once on a batch (as benchmarks/metrics_timing.py)."""

    def __init__(self, net: nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        with torch.no_grad():
            self.register_buffer("std", net(x)[0].std(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0] / self.std


def disent_kwargs(name: str, n_train: int, n_test: int, n_var: int) -> dict[str, int]:
    if name == "mig":
        return {"num_train": n_train}
    if name == "factor_vae":
        return {"num_train": n_train, "num_eval": n_test, "num_variance_estimate": n_var}
    return {"num_train": n_train, "num_test": n_test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x the default sample counts")
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=list(METRICS))
    parser.add_argument("--cache-dir", default="data", help="dSprites cache folder")
    parser.add_argument("--dci-estimator", choices=("hist", "sklearn"), default="hist",
                        help="vaelab's DCI trees (disent always uses sklearn's GBT)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    metrics = [m for m in METRICS if m in args.metrics]
    if args.threads:
        torch.set_num_threads(args.threads)
    n_train, n_test, n_var = (max(10, round(c * args.scale)) for c in (10_000, 5_000, 10_000))
    counts = {"num_train": n_train, "num_test": n_test, "num_variance_estimate": n_var}

    start = time.perf_counter()
    source = ProceduralDSprites(args.cache_dir)
    images = source.images(None)  # uint8 [N, 1, 64, 64], in memory
    print(f"loaded {len(images):,} images in {time.perf_counter() - start:.1f} s; torch "
          f"threads={torch.get_num_threads()}; scale={args.scale:g}: train={n_train:,} "
          f"test={n_test:,} variance={n_var:,} (FactorVAE batch 64)\n")  # fmt: skip
    torch.manual_seed(0)
    net = Rescaled(ConvEncoder((1, 64, 64), latent_dim=10).eval(), images[:2048].float() / 255)

    def image_rows(indices: np.ndarray) -> torch.Tensor:
        return images[torch.from_numpy(np.asarray(indices))]

    # --- vaelab: one suite run, then each metric's own encoding cost ---
    start = time.perf_counter()
    cfg = dict(counts, dci_estimator=args.dci_estimator)
    res = run_suite(source, net, args.seed, metrics, images=image_rows, **cfg).values
    vaelab_total = time.perf_counter() - start
    own_encode = {}
    for name in metrics:
        draws = draw_suite(source, args.seed, (name,), make_config(**cfg))
        key = "codes" if name != "factor_vae" else name  # MIG/DCI/SAP share one draw
        if key not in own_encode:
            t = time.perf_counter()
            encode_table(len(source), needed_indices(source, draws), net, image_rows)
            own_encode[key] = time.perf_counter() - t
        own_encode[name] = own_encode[key]

    # --- disent: each metric on its own, as a user calls it ---
    data = ArrayGroundTruthData(
        images.numpy()[:, 0, :, :, None],  # [N, 64, 64, 1] view
        factor_names=source.factor_names,
        factor_sizes=source.factor_sizes,
    )
    dataset = DisentDataset(data, transform=ToImgTensorF32())
    encoded = [0]

    @torch.no_grad()
    def representation(x: torch.Tensor) -> torch.Tensor:  # float [B, 1, 64, 64] in [0, 1]
        encoded[0] += len(x)
        return net(x)

    fns = {"mig": metric_mig, "dci": metric_dci, "sap": metric_sap,
           "factor_vae": metric_factor_vae}  # fmt: skip
    np.random.seed(args.seed)  # disent samples from numpy's global stream
    dis, dis_time, dis_images = {}, {}, {}
    for name in metrics:
        encoded[0], t = 0, time.perf_counter()
        kwargs = disent_kwargs(name, n_train, n_test, n_var)
        dis.update(fns[name](dataset, representation, **kwargs))
        dis_time[name], dis_images[name] = time.perf_counter() - t, encoded[0]
        print(f"disent {name}: {dis_time[name]:.1f} s, {encoded[0]:,} images encoded", flush=True)

    # --- table ---
    extra = args.scale != 1
    head = f"{'metric':<11}{'vaelab suite':>13}{'vaelab alone':>13}{'disent':>10}"
    head += f"{'disent@1x':>11}" if extra else ""
    print(f"\n{head}   seconds;   values vaelab/disent")
    for name in metrics:
        score_s = res[f"disent/time/{name}"]
        alone_s = score_s + own_encode[name]
        row = f"{name:<11}{score_s:>13.1f}{alone_s:>13.1f}{dis_time[name]:>10.1f}"
        row += f"{dis_time[name] / args.scale:>11.1f}" if extra else ""
        pairs = "  ".join(f"{a.replace(name + '_', '')}={res['disent/' + a]:.3f}/{dis[b]:.3f}"
                          for a, b in VALUES[name])  # fmt: skip
        print(f"{row}   {pairs}")
    print(
        f"{'encode':<11}{res['disent/time/encode']:>13.1f}   (the suite's one encoding pass; "
        f"its code table holds {res['disent/encoded_images']:,.0f} images)"
    )
    print(
        f"{'total':<11}{vaelab_total:>13.1f}{'':>13}{sum(dis_time.values()):>10.1f}"
        + (f"{sum(dis_time.values()) / args.scale:>11.1f}" if extra else "")
        + f"   disent encoded {sum(dis_images.values()):,} images in all"
    )
    for name in metrics:
        note = {
            "mig": f"train {n_train:,}",
            "factor_vae": f"train {n_train:,} / eval {n_test:,} votes x 64 images, "
            f"variance {n_var:,}",
        }
        print(
            f"  {name}: {note.get(name, f'train {n_train:,} / test {n_test:,}')}; disent "
            f"encoded {dis_images[name]:,} images"
        )
    if "dci" in metrics:
        print(f"  DCI trees: vaelab {args.dci_estimator!r}, disent sklearn's GradientBoosting")
    if extra:
        print(
            f"  disent@1x: disent seconds / {args.scale:g}, a linear extrapolation to the "
            "default counts (not measured)"
        )


if __name__ == "__main__":
    main()
