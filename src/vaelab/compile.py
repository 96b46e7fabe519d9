"""``compile``: the encoder and decoder run through ``torch.compile`` (off by default).

``compile=true`` compiles in torch's default mode; a mode by name chooses another:
``reduce-overhead`` replays each network's kernels as CUDA graphs (on a GPU, one launch in
place of dozens: for a small net whose step is bound by launching kernels, not computing
them), ``max-autotune`` also searches kernel configurations (with CUDA graphs too).
``nn.Module.compile`` compiles in place, so parameter names, checkpoints and resuming are the
same as without it; the objective (float32 sums) and the optimizer step stay eager.

CUDA graphs free a call's outputs at the next call unless a backward is pending, so in those
modes only calls with gradients (training steps) are compiled; validation, the figures and
the evaluation run the networks eagerly (their loss reads the encoder's outputs after the
decoder ran, and they keep codes across calls; each of their batch shapes would also compile
once more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaelab.errors import ConfigError

if TYPE_CHECKING:  # torch loads when a network is compiled: the config check reads MODES
    from torch import nn  # before any of it (vaelab.config)

    from vaelab.module import VAEModule

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
GRAPH_MODES = ("reduce-overhead", "max-autotune")  # the modes that replay CUDA graphs


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
    for net in (module.encoder, module.decoder) if mode is not None else ():
        net.compile(mode=mode)
        if mode in GRAPH_MODES:
            compiled_with_gradients_only(net)
    return module


def compiled_with_gradients_only(net: nn.Module) -> None:
    """``net`` (compiled by ``nn.Module.compile``) runs compiled where gradients are on and
    eagerly elsewhere (no_grad, inference mode)."""
    import torch

    compiled = net._compiled_call_impl

    def call(*args, **kwargs):
        if torch.is_grad_enabled():
            return compiled(*args, **kwargs)
        return net._call_impl(*args, **kwargs)

    net._compiled_call_impl = call
