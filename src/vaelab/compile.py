"""``compile``: the encoder and decoder run through ``torch.compile`` (off by default).

``compile=true`` compiles in torch's default mode; a mode by name chooses another:
``reduce-overhead`` replays each network's kernels as CUDA graphs (on a GPU, one launch in
place of dozens: for a small net whose step is bound by launching kernels, not computing
them), ``max-autotune`` also searches kernel configurations. ``nn.Module.compile`` compiles
in place, so parameter names, checkpoints and resuming are the same as without it; the
objective (float32 sums) and the optimizer step stay eager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaelab.errors import ConfigError

if TYPE_CHECKING:
    from vaelab.module import VAEModule

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(setting: object) -> str | None:
    """The ``torch.compile`` mode of the ``compile`` setting: None for false (or null),
    ``default`` for true, a mode of ``MODES`` as given."""
    if setting is None or setting is False:
        return None
    if setting is True:
        return "default"
    if isinstance(setting, str) and setting in MODES:
        return setting
    raise ConfigError(
        f"`compile` must be true, false or a torch.compile mode ({', '.join(MODES)}; "
        f"reduce-overhead: CUDA graphs on a GPU), got {setting!r}."
    )


def compile_networks(module: VAEModule, setting: object = True) -> VAEModule:
    """Compile ``module.encoder`` and ``module.decoder`` in ``compile_mode(setting)``, or
    leave them eager when it is None. Returns ``module``. The first steps pay the
    compilation (seconds per network on a CPU; a new batch shape compiles once more)."""
    mode = compile_mode(setting)
    if mode is not None:
        module.encoder.compile(mode=mode)
        module.decoder.compile(mode=mode)
    return module
