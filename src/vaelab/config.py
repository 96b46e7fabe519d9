"""Checks on the composed config, run before any work starts.

Every problem is reported as one sentence naming the key, the value given and what is
allowed; ``ConfigError`` carries them all and the entry point exits with status 2.
"""

from __future__ import annotations

import inspect
import json
import numbers
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from vaelab.cli import command
from vaelab.compile import compile_mode
from vaelab.errors import ConfigError, whole_number


def twice_factors(source_target: str, fallback: int) -> int:
    """2 × the number of factors of the data source class ``source_target`` (its class-level
    ``factor_sizes``), the latent count of QLAE and Tripod; ``fallback`` for data without a
    fixed set of factors (or a class that cannot be imported)."""
    try:
        sizes = getattr(get_class(str(source_target)), "factor_sizes", None)
    except Exception:
        return fallback
    return 2 * len(sizes) if isinstance(sizes, tuple | list) else fallback


def source_name(source_target: str) -> str:
    """The class name of a data source target, the key of a model's per-data-set presets."""
    return str(source_target).rsplit(".", 1)[-1]


def register_resolvers() -> None:
    """``${vaelab_twice_factors:<source target>,<fallback>}`` and
    ``${vaelab_source_name:<source target>}``, used by conf/model/qlae.yaml and tripod.yaml."""
    for name, function in (("vaelab_twice_factors", twice_factors),
                           ("vaelab_source_name", source_name)):  # fmt: skip
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_resolvers()


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# key, kind ("int" or "number"), lowest allowed value, whether the lowest is allowed, hint
RANGE_CHECKS: list[tuple[str, str, float, bool, str]] = [
    ("beta", "number", 0, True, "β weighs the KL term; use 0 or more (model=beta_vae beta=4)"),
    ("arch.latent_dim", "int", 1, True, "the latent size must be a whole number of at least 1"),
    ("optimizer.lr", "number", 0, False, "the learning rate must be above 0, e.g. 1e-4"),
    ("data.batch_size", "int", 1, True, "the batch size must be a whole number of at least 1"),
    ("data.eval_batch_size", "int", 1, True, "the batch size must be a whole number of at least 1"),
    ("data.image_size", "int", 1, True, "the image side must be a whole number of pixels"),
    ("seed", "int", 0, True, "the seed must be a whole number of 0 or more"),
    ("model.gamma", "number", 0, True, "γ weighs a penalty; use 0 or more"),
    ("model.alpha", "number", 0, True, "α weighs the index-code MI; use 0 or more"),
    ("model.c_max", "number", 0, True, "the capacity C is in nats; use 0 or more"),
    ("model.c_steps", "int", 1, True, "the capacity rises over at least 1 step"),
    ("model.lambda_od", "number", 0, True, "λ_od weighs the DIP penalty; use 0 or more"),
    ("model.lambda_d", "number", 0, True, "λ_d weighs the DIP penalty; use 0 or more"),
    ("model.latent_dim", "int", 1, True, "the latent count must be a whole number of at least 1"),
    ("model.num_values", "int", 2, True, "each latent needs at least 2 values"),
    ("model.quantization_weight", "number", 0, True, "a loss weight; use 0 or more"),
    ("model.commitment_weight", "number", 0, True, "a loss weight; use 0 or more"),
    ("model.lambda_mi", "number", 0, True, "λ_MI weighs the multi-information; use 0 or more"),
    ("model.lambda_hessian", "number", 0, True, "λ_H weighs the Hessian penalty; use 0 or more"),
    ("model.epsilon", "number", 0, False, "the finite-difference step must be above 0"),
    ("model.num_perturbations", "int", 2, True, "a variance needs at least 2 perturbations"),
    ("beta_schedule.steps", "int", 1, True, "a warm-up lasts at least 1 step"),
    ("beta_schedule.cycles", "int", 1, True, "a cyclical schedule has at least 1 cycle"),
    (
        "beta_schedule.total_steps",
        "int",
        1,
        True,
        "a cyclical schedule needs trainer.max_steps > 0",
    ),
    ("beta_schedule.ratio", "number", 0, False, "the rising part is a fraction in (0, 1]"),
    ("beta_schedule.start", "number", 0, True, "β starts at 0 or more"),
    ("trainer.val_check_interval", "number", 0, False,
     "validate every that many steps (an int) or that fraction of an epoch"),
]  # fmt: skip

# Lightning's counts, which it compares with numbers (a string failed with "'<' not supported
# between instances of 'str' and 'int'"): key, the least allowed value, whether -1 (no limit)
# is allowed too, what the number is
COUNT_CHECKS: list[tuple[str, int, bool, str]] = [
    ("trainer.max_steps", 0, True, "the training steps"),
    ("trainer.max_epochs", 0, True, "the training epochs"),
    ("trainer.log_every_n_steps", 1, False, "the steps between logged losses"),
    ("trainer.check_val_every_n_epoch", 1, False, "the epochs between validations"),
    ("callbacks.model_checkpoint.every_n_train_steps", 0, False,
     "the steps between checkpoints; 0 for none during training"),
]  # fmt: skip

# key, the largest allowed value, hint
UPPER_CHECKS: list[tuple[str, float, str]] = [
    ("seed", 2**32 - 1, "numpy's generators take seeds below 2**32"),
    ("arch.latent_dim", 65_536, "a latent this large would not fit in memory"),
    ("model.latent_dim", 65_536, "a latent this large would not fit in memory"),
    ("data.batch_size", 2**20, "a batch this large would not fit in memory"),
]

# key, the values it may take
CHOICE_CHECKS: list[tuple[str, tuple[str, ...]]] = [
    ("model.variant", ("i", "ii")),
    ("model.estimator", ("mws", "mss")),
    ("data.likelihood", ("bernoulli", "gaussian")),
    ("trainer.nan_policy", ("stop", "skip")),
    ("data.fit", ("resize", "pad")),
]

# keys that take true or false
FLAG_CHECKS: tuple[str, ...] = ("arch.channels_last",)


def _choice_problems(cfg: DictConfig) -> list[str]:
    problems = []
    for key, allowed in CHOICE_CHECKS:
        value = _get(cfg, key)
        if value is not None and str(value) not in allowed:
            case = " (names are lower case)" if str(value).lower() in allowed else ""
            problems.append(f"`{key}` must be one of {', '.join(allowed)}, got {value!r}{case}.")
    for key in FLAG_CHECKS:
        value = _get(cfg, key)
        if value is not None and not isinstance(value, bool):
            problems.append(f"`{key}` must be true or false, got {value!r}.")
    try:
        compile_mode(cfg.get("compile", False))
    except ConfigError as error:
        problems.append(str(error))
    ratio = _get(cfg, "beta_schedule.ratio")
    if _is_number(ratio) and ratio > 1:
        problems.append(f"`beta_schedule.ratio` must be <= 1, got {ratio!r}: it is a fraction.")
    return problems


def _range_problems(cfg: DictConfig) -> list[str]:
    problems = []
    for key, kind, low, inclusive, hint in RANGE_CHECKS:
        value = _get(cfg, key)
        if value is None:
            continue
        is_type = _is_int(value) if kind == "int" else _is_number(value)
        if not is_type:
            noun = "a whole number" if kind == "int" else "a number"
            problems.append(f"`{key}` must be {noun}, got {value!r}: {hint}.")
        elif value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            problems.append(f"`{key}` must be {bound}, got {value!r}: {hint}.")
    for key, least, unlimited, what in COUNT_CHECKS:
        value = _get(cfg, key)
        whole = whole_number(value, least) or (  # 1e4: Hydra's float, as Lightning takes it
            isinstance(value, float) and value.is_integer() and value >= least
        )
        if value is not None and not (whole or (unlimited and value == -1)):
            allowed = f"a whole number >= {least}" + (", or -1 for no limit" if unlimited else "")
            problems.append(f"`{key}` must be {allowed}, got {value!r}: {what}.")
    limit = _get(cfg, "trainer.limit_val_batches")
    if limit is not None and not (
        whole_number(limit, 0) or (isinstance(limit, float) and 0 <= limit <= 1)
    ):
        problems.append(
            f"`trainer.limit_val_batches` must be null (all), a whole number of batches >= 0 "
            f"or a fraction in [0, 1], got {limit!r}."
        )
    for key, high, hint in UPPER_CHECKS:
        value = _get(cfg, key)
        if _is_number(value) and value > high:
            problems.append(f"`{key}` must be <= {high}, got {value!r}: {hint}.")
    return problems


def _image_size_problems(cfg: DictConfig) -> list[str]:
    size, multiple = _get(cfg, "data.image_size"), _get(cfg, "arch.image_size_multiple") or 1
    if not _is_int(size) or size < 1:
        return []
    if size % multiple or size < multiple:
        allowed = ", ".join(str(multiple * k) for k in (1, 2, 4, 8))
        return [
            f"`data.image_size`={size} cannot be taken by arch={_get(cfg, 'arch.name')}: its "
            f"side must be a multiple of {multiple} (e.g. {allowed}); set data.image_size to "
            f"one of these or use arch=mlp."
        ]
    return []


def _missing_problems(cfg: DictConfig) -> list[str]:
    """Settings a config group leaves to the command line (``???``), e.g. ``data.path``."""
    return [f"`{key}` has no value: give it on the command line ({key}=...)." for key in
            _missing_keys(cfg)]  # fmt: skip


def _missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of ``???`` values, found without resolving any interpolation."""
    found = []
    for key in node:
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(node, key) and isinstance(node[key], DictConfig):
            found += _missing_keys(node[key], f"{prefix}{key}.")
    return found


# Groups whose options are written at the top of the config (`# @package _global_`); an option
# without that line lands under a key of the group's name, which no setting reads.
GLOBAL_GROUPS = ("experiment", "sweep", "debug")


def _hydra_choice(group: str) -> str | None:
    """The option of ``group`` Hydra composed, where a Hydra run is under way."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def _option_file(group: str, name: str) -> str | None:
    """The file of option ``name`` of ``group`` in the folders Hydra searched, where known."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    for source in HydraConfig.get().runtime.config_sources:
        if source.schema == "file":
            path = Path(source.path) / group / f"{name}.yaml"
            if path.is_file():
                return str(path)
    return None


def _package_problems(cfg: DictConfig) -> list[str]:
    """``experiment=mine`` whose file lacks ``# @package _global_``: its settings would sit
    unused under ``experiment:`` and the run would train with the defaults."""
    problems = []
    for group in GLOBAL_GROUPS:
        if not isinstance(cfg.get(group), DictConfig):
            continue
        name = _hydra_choice(group)
        option = f"{group}={name}" if name else f"the `{group}` option"
        where = _option_file(group, name) if name else None
        file = f" ({where})" if where else ""
        keys = ", ".join(str(k) for k in cfg[group])
        problems.append(
            f"{option}{file} cannot be used: its first line must be `# @package _global_`, "
            f"as in conf/{group}/*.yaml. Without it, its settings ({keys}) land under a key "
            f"`{group}:` that nothing reads, and the run would go with the defaults."
        )
    return problems


def _data_setting_problems(cfg: DictConfig) -> list[str]:
    """Keys of ``data`` that a data module taking ``**source_settings`` would swallow: each
    must be one of its parameters or be passed on to ``data.source`` by interpolation."""
    data = cfg.get("data")
    if not isinstance(data, DictConfig) or not isinstance(data.get("source"), DictConfig):
        return []
    try:
        params = inspect.signature(get_class(data.get("_target_", ""))).parameters
    except Exception:  # an unknown target: Hydra's own error says so when it is built
        return []
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []  # unknown keys already fail as unexpected arguments
    passed = json.dumps(OmegaConf.to_container(data.source, resolve=False))
    unused = [
        key for key in data
        if key not in params and key != "_target_"
        and not re.search(r"\$\{\.+" + re.escape(str(key)) + r"\}", passed)
    ]  # fmt: skip
    settings = sorted(k for k in data if k not in unused and k not in ("_target_", "source"))
    return [
        f"the data (`data`) cannot be built from the config: `data.{key}` is not one of its "
        f"settings ({', '.join(settings)})."
        for key in unused
    ]


def _data_problems(cfg: DictConfig) -> list[str]:
    """The subset and the split fractions; the batch is compared with the training split only
    when the fractions are valid (a fraction of 1.5 left "~-1044 training images")."""
    problems = []
    fractions = []
    for key in ("data.val_fraction", "data.test_fraction"):
        value = _get(cfg, key)
        if value is not None and (not _is_number(value) or not 0 < value < 0.5):
            problems.append(f"`{key}` must be a fraction in (0, 0.5), got {value!r}.")
        fractions.append(value if _is_number(value) else 0)
    subset, batch = _get(cfg, "data.subset"), _get(cfg, "data.batch_size")
    if subset is not None:
        if not _is_number(subset) or subset <= 0 or (isinstance(subset, float) and subset > 1):
            problems.append(
                f"`data.subset` must be null (all images), a count >= 1 or a fraction in "
                f"(0, 1], got {subset!r}."
            )
        elif _is_int(subset) and _is_int(batch) and batch > 0 and not problems:
            train = subset * (1 - sum(fractions))
            if batch > train:
                problems.append(
                    f"`data.batch_size`={batch} is larger than the ~{int(train)} training images "
                    f"of data.subset={subset}; lower the batch size or raise the subset."
                )
    return problems


def _model_problems(cfg: DictConfig) -> list[str]:
    name, beta = _get(cfg, "model.name"), _get(cfg, "beta")
    if not _is_number(beta):
        return []
    if name == "vae" and beta != 1:
        return [
            f"model=vae is the β = 1 VAE but beta={beta} was given; for another β use "
            f"model=beta_vae beta={beta}."
        ]
    if name in ("ae", "qlae", "tripod") and beta != 0:
        return [
            f"model={name} has no KL term, so beta={beta} would do nothing; drop the beta override."
        ]
    if name == "annealed_vae":
        return _annealed_problems(cfg, beta)
    return []


def _annealed_problems(cfg: DictConfig, beta: float) -> list[str]:
    """annealed_vae's weight is model.gamma and what anneals is C: β must not be set apart."""
    gamma, schedule = _get(cfg, "model.gamma"), _get(cfg, "beta_schedule._target_")
    problems = []
    if _is_number(gamma) and beta != gamma:
        problems.append(
            f"model=annealed_vae weighs |KL − C(t)| by γ = model.gamma ({gamma}), so beta={beta} "
            f"would do nothing; set model.gamma={beta} instead (beta follows it)."
        )
    if schedule is not None and schedule != "vaelab.schedules.Constant":
        problems.append(
            f"model=annealed_vae anneals the capacity C(t), not a weight, so a "
            f"{schedule.rsplit('.', 1)[-1].lower()} β schedule would do nothing; drop "
            f"beta_schedule and set model.c_max / model.c_steps (C rises from 0 to c_max nats "
            f"over c_steps)."
        )
    return problems


def _checkpoint_problems(cfg: DictConfig) -> list[str]:
    path = _get(cfg, "ckpt_path")
    if path is None or path == "last":
        return []
    if not Path(str(path)).is_file():
        return [
            f"`ckpt_path`={path} is not a file; give the path of a checkpoint such as "
            f"<run dir>/checkpoints/last.ckpt, `last` for the newest unfinished run of the "
            f"same overrides, or leave ckpt_path=null."
        ]
    return []


def evaluation_problems(cfg: DictConfig) -> list[str]:
    """Unknown metric names or suite settings, which would otherwise fail after training."""
    from dataclasses import fields

    from vaelab.metrics.settings import METRICS, SuiteConfig, check_jobs

    problems = []
    chosen = _get(cfg, "evaluation.disentanglement")
    unknown = [str(m) for m in chosen or () if str(m) not in METRICS]
    if unknown:
        problems.append(
            f"`evaluation.disentanglement` names unknown metrics {unknown}; choose from "
            f"{', '.join(METRICS)}."
        )
    settings = _get(cfg, "evaluation.suite")
    known = {f.name for f in fields(SuiteConfig)}
    extra = sorted(set(settings or ()) - known)
    if extra:
        problems.append(
            f"`evaluation.suite` has unknown settings {extra}; known: {', '.join(sorted(known))}."
        )
    try:
        check_jobs((settings or {}).get("jobs", 1))
    except ValueError as error:
        problems.append(f"{error}.")
    return problems


def build_error(error: Exception) -> str:
    """What went wrong in a Hydra ``instantiate``, on one line: the class's own error when
    there is one (Hydra wraps it in three lines naming the target and the key)."""
    text = str(error.__cause__ or error)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# Lightning's words for an accelerator that is not on this machine -> what it needs
ABSENT_ACCELERATORS = {
    "No supported gpu backend found": ("gpu", "a CUDA GPU", "torch.cuda.is_available()"),
    "`CUDAAccelerator` can not run": ("cuda", "a CUDA GPU", "torch.cuda.is_available()"),
    "`MPSAccelerator` can not run": ("mps", "Apple silicon (MPS)",
                                     "torch.backends.mps.is_available()"),
}  # fmt: skip


def missing_accelerator(detail: str) -> str | None:
    """Lightning's refusal of an accelerator this machine lacks (trainer=gpu without a GPU),
    said plainly: what the trainer needs, that it is not visible, and the CPU's options."""
    found = [absent for words, absent in ABSENT_ACCELERATORS.items() if words in detail]
    if not found:
        return None
    accelerator, needs, probe = found[0]
    choice = _hydra_choice("trainer")
    named = choice in ("gpu", "ddp", "mps")  # a trainer option made for that accelerator
    chosen = f"trainer={choice}" if named else f"trainer.accelerator={accelerator}"
    ddp = choice == "ddp"
    instead = ("trainer=ddp_cpu for DDP across CPU processes" if ddp
               else "trainer=cpu, or trainer=auto to take a GPU where there is one")  # fmt: skip
    return (
        f"{chosen} needs {needs}, and none is visible here ({probe} is False): train on "
        f"the CPU with {instead}."
    )


@contextmanager
def building(what: str) -> Iterator[None]:
    """Hydra's error when a ``_target_`` cannot be called with its keys, as a ``ConfigError``."""
    from hydra.errors import InstantiationException

    try:
        yield
    except InstantiationException as error:
        detail = build_error(error).rstrip(".!")
        missing = missing_accelerator(detail)
        if missing:
            raise ConfigError(missing) from None
        raise ConfigError(
            f"{what} cannot be built from the config: {detail}. Check the keys given for it "
            f"(`{command('train')} --cfg job` prints the composed config)."
        ) from None


def validate(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` listing the problems found in ``cfg``: all of them, except that
    the data settings are checked against the data module's signature only when nothing
    else is wrong: reading it imports Lightning and torch (5 s of a 7 s refusal of
    ``beta=-3`` on 2 cores), which a valid config loads next anyway."""
    problems = (
        _package_problems(cfg)
        + _missing_problems(cfg)
        + _range_problems(cfg)
        + _choice_problems(cfg)
        + _image_size_problems(cfg)
        + _data_problems(cfg)
        + _model_problems(cfg)
        + _checkpoint_problems(cfg)
        + evaluation_problems(cfg)
    ) or _data_setting_problems(cfg)
    if problems:
        raise ConfigError("Invalid configuration: " + " ".join(problems))
