"""K copies of one network evaluated as one: parameters stacked along a leading model axis.

``StackedNet([net_1, ..., net_K])(x)`` with ``x [K, B, ...]`` returns what each ``net_k(x[k])``
returns, stacked: ``torch.func.vmap`` over ``functional_call`` of one template, so a linear
layer runs as one batched matrix product and a convolution as one grouped convolution. The
stacked tensors are the trainable ``nn.Parameter``s (one optimizer over them is K optimizers
when the update is elementwise, as Adam's is); ``member_state(k)`` is net k's state dict.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot hold dots


def _strided_as(stacked: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """``stacked [K, ...]`` with each slice ``[k]`` laid out as ``member`` is: NHWC weights
    (vaelab.nets.conv) stay NHWC in the stack, so a member computes what it does alone."""
    if stacked[0].stride() == member.stride():
        return stacked
    # the strides tell a convolution its layout, even along a dimension of size 1
    dense = member.is_contiguous() or (
        member.dim() == 4 and member.is_contiguous(memory_format=torch.channels_last)
    )
    if not dense:
        raise ValueError(f"cannot stack weights laid out with strides {member.stride()}")
    strides = (member.numel(), *member.stride())
    return torch.empty_strided(stacked.shape, strides, dtype=stacked.dtype,
                               device=stacked.device).copy_(stacked)  # fmt: skip


class StackedNet(nn.Module):
    """``forward(*inputs)``: each input ``[K, ...]``; the outputs ``[K, ...]`` (None stays)."""

    def __init__(self, nets: Sequence[nn.Module], vectorized: bool = True) -> None:
        super().__init__()
        self.vectorized = vectorized
        if not nets:
            raise ValueError("a stack needs at least one network")
        params, buffers = stack_module_state(list(nets))
        self.names, self.buffer_names = list(params), list(buffers)
        members = dict(nets[0].named_parameters())
        self.params = nn.ParameterDict({_key(n): nn.Parameter(_strided_as(p, members[n]))
                                        for n, p in params.items()})  # fmt: skip
        for name, value in buffers.items():
            self.register_buffer(_key(name), value)
        # the template holds no weights of its own (meta), and stays out of the state dict
        self._template = [copy.deepcopy(nets[0]).to("meta")]
        self.size = len(nets)

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = {n: self.params[_key(n)] for n in self.names}
        buffers = {n: getattr(self, _key(n)) for n in self.buffer_names}
        return params, buffers

    def forward(self, *inputs: torch.Tensor) -> Any:
        return self._vmapped(*inputs) if self.vectorized else self._looped(*inputs)

    def _looped(self, *inputs: torch.Tensor) -> Any:
        """Net k on ``inputs[k]`` one after another, with slices of the stacked weights."""
        params, buffers = self._state()
        outs = [
            functional_call(self._template[0], ({n: p[k] for n, p in params.items()},
                                                {n: b[k] for n, b in buffers.items()}),
                            tuple(x[k] for x in inputs))
            for k in range(self.size)
        ]  # fmt: skip
        if not isinstance(outs[0], tuple):
            return torch.stack(outs)
        return tuple(None if o[0] is None else torch.stack(o) for o in zip(*outs, strict=True))

    def member_forward(self, k: int, *inputs: torch.Tensor) -> Any:
        """Net k alone on ``inputs`` (no model axis), with its slice of the stacked weights
        (gradients reach them): Tripod's decoder probes."""
        params, buffers = self._state()
        member = ({n: p[k] for n, p in params.items()}, {n: b[k] for n, b in buffers.items()})
        return functional_call(self._template[0], member, inputs)

    def _vmapped(self, *inputs: torch.Tensor) -> Any:
        template, absent = self._template[0], []

        def one(params: dict, buffers: dict, *xs: torch.Tensor) -> Any:
            out = functional_call(template, (params, buffers), xs)
            if not isinstance(out, tuple):
                return out
            absent[:] = [o is None for o in out]  # vmap returns tensors only: None travels aside
            return tuple(params[self.names[0]].new_zeros(()) if o is None else o for o in out)

        out = vmap(one)(*self._state(), *inputs)
        if not isinstance(out, tuple):
            return out
        return tuple(None if gone else o for o, gone in zip(out, absent, strict=True))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Net k's ``state_dict``: what ``nets[k].load_state_dict`` takes."""
        params, buffers = self._state()
        return {n: t[k].detach().clone() for n, t in {**params, **buffers}.items()}

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Set net k's weights from a ``state_dict`` of one net."""
        params, buffers = self._state()
        for name, tensor in {**params, **buffers}.items():
            tensor[k].copy_(state[name])
