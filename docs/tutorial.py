"""``make tutorial``: the MIT 6.S191 VAE tutorial walked through with vaelab's own commands.

Runs the experiments behind each section (an AE and a VAE on MNIST when its files are in
data/MNIST/raw, else scikit-learn's digits; the AE-vs-VAE comparison; β = 1 against β = 8 on
dSprites), copies the figures those runs wrote into ``docs/tutorial/`` and writes
``docs/tutorial.md`` with the commands that made them and the numbers they measured.
Finished runs are skipped when it is run again (vaelab's own resume), so a second call only
rewrites the page. ``--quick`` trains a few steps on small data (the tests use it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import vaelab

ROOT = Path(__file__).resolve().parents[1]


def first_data(data_dir: Path) -> tuple[str, list[str]]:
    """MNIST with the tutorial's MLP when its raw files are here, else the bundled digits."""
    if (data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        return "MNIST", ["data=mnist", "data.image_size=28", "data.download=false"]
    return "scikit-learn's 8×8 digits (resized to 16×16)", ["data=digits"]


def plans(args: argparse.Namespace, data: list[str]) -> dict[str, list[str]]:
    """The overrides of each run; ``--quick``: a few steps on small data, no evaluation."""
    steps, dsprites_steps = args.steps, args.dsprites_steps
    digits = [*data, "arch=mlp", "trainer=cpu", f"trainer.max_steps={steps}"]
    digits += [f"trainer.val_check_interval={max(1, steps // 4)}", "evaluation=none"]
    dsprites = ["data=dsprites", "arch=conv", "size=small", "trainer=cpu"]
    dsprites += [f"trainer.max_steps={dsprites_steps}", "figures.traversal.n_base=2"]
    dsprites += [f"trainer.val_check_interval={max(1, dsprites_steps // 2)}"]
    evaluation = ["evaluation=fast", "evaluation.iwae_k=100"]
    if args.quick:
        digits += ["data.subset=400", "size=small"]
        dsprites += ["data.subset=1024", "data.val_fraction=0.1", "data.test_fraction=0.1"]
        dsprites += ["figures.factors.num_points=200"]
        evaluation = ["evaluation=none"]
    compare = ["experiment=ae_vs_vae", f"trainer.max_steps={steps}", "evaluation=none"]
    compare += [f"callbacks.model_checkpoint.every_n_train_steps={steps}"]
    compare += [f"trainer.val_check_interval={max(1, steps // 4)}"]
    dsprites += evaluation
    return {
        "ae": ["model=ae", *digits],
        "vae": ["model=vae", *digits],
        "ae_vs_vae": compare,
        "dsprites_beta1": ["model=beta_vae", "beta=1", *dsprites],
        "dsprites_beta8": ["model=beta_vae", "beta=8", *dsprites],
    }


def run(name: str, overrides: list[str], work: Path) -> str:
    """Run one of vaelab's programs into ``work/<name>``; returns the command shown."""
    program = "compare.py" if name == "ae_vs_vae" else "train.py"
    folder = work / name
    where = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    shown = f"python src/{program} {' '.join(overrides)} hydra.run.dir={where}"
    print(f"$ {shown}", flush=True)
    if (folder / "figures" / "ae_vs_vae.png").is_file():
        return shown  # compare.py refuses to train its finished sides again
    settings = [*overrides, f"hydra.run.dir={folder}", "~callbacks.progress"]
    if program == "train.py":  # in this process, as the command would (vaelab.train)
        with contextlib.redirect_stdout(io.StringIO()):
            vaelab.train(settings, device="cpu")
    else:
        command = [sys.executable, str(ROOT / "src" / program), *settings]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return shown


def seconds(folder: Path) -> float:
    """The run's own time (metrics.json's elapsed_s; compare.py's two sides summed), the same
    when the tutorial runs again and skips it."""
    records = [folder / "metrics.json"] if (folder / "metrics.json").is_file() else []
    records = records or [folder / side / "metrics.json" for side in ("ae", "vae")]
    return sum(json.loads(r.read_text())["elapsed_s"] for r in records)


def metrics(folder: Path) -> dict[str, float]:
    return json.loads((folder / "metrics.json").read_text())["metrics"]


def figure(run_dir: Path, name: str, out: Path, as_name: str) -> str:
    """Copy ``<run>/figures/<name>`` to ``out/<as_name>``; returns the Markdown image."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "figures" / name, out / as_name)
    return f"![{as_name}]({out.name}/{as_name})"


def fmt(values: dict[str, float], key: str, digits: int = 1) -> str:
    value = values.get(key)
    return "–" if value is None else f"{value:.{digits}f}"


def change(one: dict[str, float], eight: dict[str, float]) -> str:
    """A sentence saying how β = 8 differs from β = 1 in this run's numbers."""
    parts = [("the KL", "test/kl", 1, " nats"), ("the reconstruction loss", "test/recon", 1, "")]
    parts += [("MIG", "disent/mig", 3, ""), ("DCI disentanglement", "disent/dci[gbt]/d", 3, "")]
    said = [
        f"{name} {'goes' if key.startswith('disent') else 'moves'} from {fmt(one, key, n)}{unit}"
        f" to {fmt(eight, key, n)}{unit}"
        for name, key, n, unit in parts
        if key in one and key in eight
    ]
    return ("Going from β = 1 to β = 8, " + "; ".join(said) + ".") if said else ""


def page(
    data_name: str,
    shown: dict[str, str],
    seconds: dict[str, float],
    work: Path,
    out: Path,
    args: argparse.Namespace,
) -> str:
    img = out / "tutorial"
    ae, vae = work / "ae", work / "vae"
    b1, b8 = work / "dsprites_beta1", work / "dsprites_beta8"
    m = {name: metrics(work / name) for name in ("ae", "vae", "dsprites_beta1", "dsprites_beta8")}
    columns = [("test/recon", 1), ("test/kl", 1), ("test/active_units", 0)]
    columns += [("disent/mig", 3), ("disent/dci[gbt]/d", 3)]
    rows = "\n".join(
        f"| β = {beta} | " + " | ".join(fmt(m[k], key, n) for key, n in columns) + " |"
        for beta, k in (("1", "dsprites_beta1"), ("8", "dsprites_beta8"))
    )
    total = sum(seconds.values())
    return f"""# The MIT 6.S191 VAE tutorial, walked through with vaelab

Written by `make tutorial` (`docs/tutorial.py`{" --quick" if args.quick else ""}) on
{time.strftime("%Y-%m-%d")}: every figure below was made by the command shown above it,
on {data_name} and on procedural dSprites; its runs took {total / 60:.1f} minutes on this
machine's CPU. The runs are short ({args.steps} steps on the digits, {args.dsprites_steps} on
dSprites), so the figures show the tutorial's points, not converged models.

## 1. An autoencoder reconstructs, but its samples fail

```bash
{shown["ae"]}
```

The autoencoder's encoder maps an image to one code z, its decoder maps z back; the loss
is the reconstruction alone (test reconstruction {fmt(m["ae"], "test/recon")} nats per
image). Top: test images over their reconstructions. Bottom: decodes of z ~ N(0, I). Nothing
made the codes fill N(0, I), so most draws land where no image was encoded, and decode to
blurs.

{figure(ae, "reconstructions_samples.png", img, "ae_reconstructions_samples.png")}

## 2. The VAE: a distribution per image, and samples that look like data

```bash
{shown["vae"]}
```

The VAE's encoder gives q(z|x) = N(mu, sigma²); training samples z = mu + sigma * eps and
minimises reconstruction + KL(q(z|x) || N(0, I)) (BCE summed over pixels plus the
closed-form KL). The KL pulls the codes toward the prior, so prior draws decode to digits.
Test reconstruction {fmt(m["vae"], "test/recon")} and KL {fmt(m["vae"], "test/kl")} nats;
ELBO {fmt(m["vae"], "test/elbo")}.

{figure(vae, "reconstructions_samples.png", img, "vae_reconstructions_samples.png")}

## 3. The KL of each latent dimension

The KL term, split by dimension: a dimension with KL near 0 has q(z_j|x) = N(0, 1) for
every image and carries nothing; the others carry the information. The total KL is the
price the model pays for its reconstruction.

{figure(vae, "kl_per_dim.png", img, "vae_kl_per_dim.png")}

## 4. Perturbing one latent: traversals

One test image's code with one dimension moved from -2.5 to 2.5, the others held; rows are
the dimensions by decreasing KL, so the unused ones (bottom) change nothing.

{figure(vae, "traversal.png", img, "vae_traversal.png")}

## 5. Interpolating between two images

Decodes along the straight line from mu(a) to mu(b) (`figures.interpolation.method=slerp`
follows the great circle instead).

{figure(vae, "interpolation.png", img, "vae_interpolation.png")}

## 6. The AE's and the VAE's latent spaces side by side

```bash
{shown["ae_vs_vae"]}
```

The same MLP with a 2-D latent, trained as an AE and as a VAE on the digits. The AE's codes
spread over an arbitrary region with gaps; the VAE's fill the prior's circles, which is why
its samples decode to digits.

{figure(work / "ae_vs_vae", "ae_vs_vae.png", img, "ae_vs_vae.png")}

## 7. β = 1 against β = 8 on dSprites

```bash
{shown["dsprites_beta1"]}
{shown["dsprites_beta8"]}
```

β-VAE weighs the KL by β. On dSprites (five known factors: shape, scale, orientation, x, y)
the β-VAE papers find that a larger β leaves fewer dimensions in use and aligns each with one
factor, at a cost in reconstruction. After {args.dsprites_steps} steps of the small conv net
(6 latents) here:

| | reconstruction (nats) | KL (nats) | active units | MIG | DCI disentanglement |
|---|---|---|---|---|---|
{rows}

{change(m["dsprites_beta1"], m["dsprites_beta8"])} The published gains in the metrics come
with far longer training (the README's dSprites sweep: MIG for β = 16 passes 0.2 only after
about 100k steps in public re-implementations).

Traversals, β = 1:

{figure(b1, "traversal.png", img, "dsprites_beta1_traversal.png")}

β = 8:

{figure(b8, "traversal.png", img, "dsprites_beta8_traversal.png")}

KL per dimension, β = 1 and β = 8:

{figure(b1, "kl_per_dim.png", img, "dsprites_beta1_kl_per_dim.png")}
{figure(b8, "kl_per_dim.png", img, "dsprites_beta8_kl_per_dim.png")}

Each run's time, training and its end-of-run evaluation and figures: {
        ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    }.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps on the digits (3000; --quick: 200)")  # fmt: skip
    parser.add_argument("--dsprites-steps", type=int, default=None,
                        help="training steps on dSprites (2000; --quick: 100)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a few steps on small data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="tutorial.md goes here")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "tutorial")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 200 if args.quick else 3000
    if args.dsprites_steps is None:
        args.dsprites_steps = 100 if args.quick else 2000
    data_dir = Path(os.environ.get("VAELAB_DATA_DIR", ROOT / "data"))
    data_name, data = first_data(data_dir)
    work = args.work.absolute()
    shown = {name: run(name, overrides, work) for name, overrides in plans(args, data).items()}
    times = {name: seconds(work / name) for name in shown}
    (args.out / "tutorial.md").write_text(page(data_name, shown, times, work, args.out, args))
    print(f"wrote {args.out / 'tutorial.md'} and its figures in {args.out / 'tutorial'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
