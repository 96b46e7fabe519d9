"""``compile=true``: the encoder and decoder run through ``torch.compile`` (off by default).

``nn.Module.compile`` compiles in place, so parameter names, checkpoints and resuming are the
same as without it; the objective (float32 sums) and the optimizer step stay eager.
"""

from __future__ import annotations

from vaelab.module import VAEModule


def compile_networks(module: VAEModule, enabled: bool = True, **options) -> VAEModule:
    """Compile ``module.encoder`` and ``module.decoder`` when ``enabled``; ``options`` go to
    ``torch.compile`` (e.g. ``mode="max-autotune"``). Returns ``module``. The first steps pay
    the compilation (seconds per network on a CPU; a new batch shape compiles once more)."""
    if enabled:
        module.encoder.compile(**options)
        module.decoder.compile(**options)
    return module
