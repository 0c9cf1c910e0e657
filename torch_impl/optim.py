"""AdaBound, AMSBound and AdaBoundW as a ``torch.optim.Optimizer``.

The optax twin is :mod:`jax_impl.optim`; both follow the same step, written out in
:class:`AdaBound`, and ``parity`` feeds them the same gradients and compares trajectories.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

from twintricks.checks import check_real

__all__ = ["AdaBound", "AMSBound", "AdaBoundW"]

# Group keys that hold hyperparameters (validated in ``add_param_group``).
_BASE_LR = "base_lr"


def _check_betas(value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"`betas` must be a pair (beta1, beta2), got {value!r}")
    b1 = check_real("betas[0]", value[0], low=0.0, high=1.0, high_inclusive=False)
    b2 = check_real("betas[1]", value[1], low=0.0, high=1.0, high_inclusive=False)
    return b1, b2


def _check_group(group: dict) -> None:
    """Validate (and normalise) one param group's hyperparameters in place."""
    group["lr"] = check_real("lr", group["lr"], low=0.0, low_inclusive=False)
    group[_BASE_LR] = check_real("base_lr", group[_BASE_LR], low=0.0, low_inclusive=False)
    group["betas"] = _check_betas(group["betas"])
    group["final_lr"] = check_real("final_lr", group["final_lr"], low=0.0, low_inclusive=False)
    group["gamma"] = check_real("gamma", group["gamma"], low=0.0, high=1.0, high_inclusive=False)
    group["eps"] = check_real("eps", group["eps"], low=0.0)
    group["weight_decay"] = check_real("weight_decay", group["weight_decay"], low=0.0)
    for flag in ("amsbound", "decoupled_weight_decay"):
        if not isinstance(group[flag], bool):
            raise TypeError(f"`{flag}` must be a bool, got {type(group[flag]).__name__} {group[flag]!r}")
    foreach = group["foreach"]
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"`foreach` must be None or a bool, got {type(foreach).__name__} {foreach!r}")


def _bounds(t: int, final: float, gamma: float) -> tuple[float, float]:
    """The clip interval at step ``t`` (1-based) for the (lr-scaled) final learning rate ``final``.

    ``lower = final·(1 - 1/(γt + 1))`` is evaluated as ``final·γt/(γt + 1)`` and
    ``upper = final·(1 + 1/(γt))`` as ``final + final/(γt)`` (the same numbers, without the
    cancellation, and 0 rather than NaN for a zero lr); ``upper`` is ``inf`` when ``γ = 0``.
    """
    gt = gamma * t
    lower = final * gt / (gt + 1.0)
    # final + final/γt (= final·(1 + 1/γt)) stays 0, not 0·inf = NaN, when the lr is 0 and γt tiny
    upper = final + final / gt if gt > 0 else math.inf
    return lower, upper


def _schedule(group: dict, t: int, dtype: torch.dtype) -> tuple[float, float, float]:
    """``(step_size, lower, upper)`` at step ``t`` for a group's tensors of ``dtype``."""
    beta1, beta2 = group["betas"]
    lr = group["lr"]
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    lower, upper = _bounds(t, group["final_lr"] * lr / group[_BASE_LR], group["gamma"])
    if upper > torch.finfo(dtype).max:  # round to the tensor's dtype as a cast would
        upper = math.inf
    return step_size, lower, upper


# What torch.optim's own default rule (``_default_to_fused_or_foreach``) accepts for foreach.
_FOREACH_DEVICE_TYPES = ("cuda", "xpu", "mtia")
_FOREACH_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _default_foreach(params: list[torch.Tensor]) -> bool:
    """torch's default: multi-tensor kernels when every parameter is a plain tensor on a device
    that runs them natively (CUDA, XPU, MTIA); on CPU they are only a loop over the same ops."""
    return all(type(p) in _FOREACH_TENSOR_TYPES and p.device.type in _FOREACH_DEVICE_TYPES for p in params)


def _single_tensor_step(p: torch.Tensor, state: dict, group: dict) -> None:
    """The update of one parameter (``state["step"]`` already counts this step)."""
    beta1, beta2 = group["betas"]
    wd, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
    grad, exp_avg, exp_avg_sq = p.grad, state["exp_avg"], state["exp_avg_sq"]
    if wd != 0 and not decoupled:
        grad = grad.add(p, alpha=wd)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if group["amsbound"]:
        torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        exp_avg_sq = state["max_exp_avg_sq"]
    denom = exp_avg_sq.sqrt().add_(group["eps"])
    step_size, lower, upper = _schedule(group, state["step"], denom.dtype)
    update = torch.full_like(denom, step_size).div_(denom).clamp_(lower, upper).mul_(exp_avg)
    if wd != 0 and decoupled:
        decay = p.mul(wd)
        p.sub_(update).sub_(decay)
    else:
        p.sub_(update)


def _mul_all(tensors: list[torch.Tensor], value: float, *, inplace: bool) -> list[torch.Tensor]:
    """``[t.mul_(value) for t in tensors]`` (or ``t.mul``) with a multi-tensor kernel where one runs.

    On CPU the foreach ops are a loop over aten ops anyway, and the one ``torch._foreach_mul``
    calls (``mul.Scalar``) rounds ``value`` to a bfloat16/float16 tensor's dtype first (β1 = 0.9
    becomes 0.8984375) where ``t.mul(value)`` multiplies in float32 by ``value`` unrounded: loop.
    """
    if tensors[0].device.type == "cpu":
        return [t.mul_(value) if inplace else t.mul(value) for t in tensors]
    if inplace:
        torch._foreach_mul_(tensors, value)
        return tensors
    return torch._foreach_mul(tensors, value)


def _multi_tensor_step(params: list[torch.Tensor], states: list[dict], group: dict) -> None:
    """:func:`_single_tensor_step` for parameters sharing device, dtype and step, op for op with
    ``torch._foreach_*`` kernels (on CPU these loop over the very same ops: bit-identical)."""
    beta1, beta2 = group["betas"]
    wd, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
    grads = [p.grad for p in params]
    exp_avgs = [s["exp_avg"] for s in states]
    exp_avg_sqs = [s["exp_avg_sq"] for s in states]
    if wd != 0 and not decoupled:
        grads = torch._foreach_add(grads, params, alpha=wd)
    _mul_all(exp_avgs, beta1, inplace=True)
    torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
    _mul_all(exp_avg_sqs, beta2, inplace=True)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    if group["amsbound"]:
        max_exp_avg_sqs = [s["max_exp_avg_sq"] for s in states]
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
        exp_avg_sqs = max_exp_avg_sqs
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, group["eps"])
    step_size, lower, upper = _schedule(group, states[0]["step"], denom[0].dtype)
    # full_like(denom, step_size) without a kernel per tensor: 0 + step_size rounds as the fill does
    update = [torch.empty_like(d) for d in denom]
    torch._foreach_zero_(update)
    torch._foreach_add_(update, step_size)
    torch._foreach_div_(update, denom)
    torch._foreach_clamp_min_(update, lower)  # = clamp_(lower, upper): lower <= upper always
    torch._foreach_clamp_max_(update, upper)
    torch._foreach_mul_(update, exp_avgs)
    if wd != 0 and decoupled:
        decay = _mul_all(params, wd, inplace=False)
        torch._foreach_sub_(params, update)
        torch._foreach_sub_(params, decay)
    else:
        torch._foreach_sub_(params, update)


class AdaBound(torch.optim.Optimizer):
    r"""AdaBound (Adam whose per-element step is clipped into a band that shrinks to SGD's).

    For each parameter ``p`` with gradient ``g`` at step ``t`` (starting at 1)::

        g   = g + weight_decay·p                      (coupled L2; not when decoupled)
        m   = β1·m + (1-β1)·g
        v   = β2·v + (1-β2)·g²                        AMSBound: v̂ = max(v̂, v); v̂ is used below
        step_size = lr·sqrt(1-β2^t)/(1-β1^t)
        final     = final_lr·lr/base_lr
        lower     = final·(1 - 1/(γt + 1)),   upper = final·(1 + 1/(γt))
        p   = p - clip(step_size/(sqrt(v) + eps), lower, upper)·m
        p   = p - weight_decay·p_old                  (AdaBoundW only: decoupled, *not* scaled by lr)

    ``base_lr`` is the lr a param group was created with; it is stored in the group (key
    ``"base_lr"``), so a ``torch.optim.lr_scheduler`` that changes ``lr`` scales the bounds too
    (``final`` follows ``lr/base_lr``), ``state_dict()`` saves it and ``load_state_dict()``
    restores it, and groups added with :meth:`add_param_group` get their own (a group dict may
    also set ``"base_lr"`` explicitly). State (``step``, ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq`` for AMSBound) is created lazily at a parameter's first step, in the
    parameter's dtype and device; ``step`` is a Python int.

    Args:
        params: parameters or param-group dicts.
        lr: Adam learning rate, > 0 (it is also the base lr of the bounds).
        betas: ``(β1, β2)``, each in [0, 1).
        final_lr: the SGD learning rate both bounds converge to, > 0.
        gamma: convergence speed of the bounds, in [0, 1); 0 gives ``[0, inf)`` (plain Adam).
        eps: added to ``sqrt(v)``, >= 0.
        weight_decay: >= 0; coupled L2 (added to the gradient) unless ``decoupled_weight_decay``.
        amsbound: use the running maximum of ``v`` (AMSBound).
        decoupled_weight_decay: AdaBoundW: ``p -= weight_decay·p`` after the step, not scaled by
            the learning rate.
        foreach: update a group's parameters with multi-tensor ``torch._foreach_*`` kernels
            (about fifteen kernel launches per step instead of a dozen per parameter) or one
            tensor at a time (``False``). ``None`` (default) is torch's own optimizers' rule:
            foreach when every parameter with a gradient is a plain tensor on CUDA (or XPU,
            MTIA), else the per-tensor loop — on CPU foreach ops are a loop over the same ops,
            and slower, since a whole group's temporaries fall out of cache. ``True`` works on
            any device. Same operations in the same order: bit-identical to the loop on CPU (on
            a GPU the two kernels may round the last bit differently). Foreach holds a group's
            temporaries at once: two to three extra copies of its parameters at peak. Stored in
            each param group (key ``"foreach"``), so ``state_dict()`` carries it.

    .. warning:: Differences from the reference implementation (Luolc/AdaBound):
       ``base_lr`` lives in the param group, so :meth:`add_param_group` works (the reference
       silently never updates a group added later) and a resumed optimizer keeps the base lr it
       was created with (the reference re-reads it from the current, possibly scheduled, lr).
       The lower bound is computed as ``final·γt/(γt+1)``, equal to the reference's
       ``final·(1 - 1/(γt+1))`` up to rounding. ``gamma = 0`` is accepted (``upper = inf``).

    .. warning:: AdaBoundW's decay ``p -= weight_decay·p`` is *not* multiplied by the learning
       rate, as in the paper's reference AdaBoundW and the formula above; ``torch.optim.AdamW``
       multiplies by ``lr``, so its ``weight_decay`` values do not carry over, and an lr
       schedule does not scale this decay. We keep the reference's choice so that published
       AdaBoundW settings reproduce.

    References:
        Liangchen Luo, Yuanhao Xiong, Yan Liu, Xu Sun. "Adaptive Gradient Methods with Dynamic
        Bound of Learning Rate." ICLR 2019.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsbound: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            final_lr=final_lr,
            gamma=gamma,
            eps=eps,
            weight_decay=weight_decay,
            amsbound=amsbound,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
        )
        # Validate the defaults once up front so a bad argument is reported as that argument,
        # even for an empty-looking call.
        _check_group({**defaults, _BASE_LR: lr})
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group; its ``base_lr`` defaults to its own ``lr`` (the bounds scale by lr/base_lr)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault(_BASE_LR, group["lr"])
        try:
            _check_group(group)
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # pickles made before base_lr existed
            group.setdefault(_BASE_LR, group["lr"])
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("amsbound", False)
            group.setdefault("foreach", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """One AdaBound step for every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdaBound does not support sparse gradients")
            foreach = _default_foreach(params) if group["foreach"] is None else group["foreach"]
            states = [self._count_step(p, group["amsbound"]) for p in params]
            if not foreach:
                for p, state in zip(params, states):
                    _single_tensor_step(p, state, group)
                continue
            buckets: dict[tuple, tuple[list, list]] = {}  # lazily created states may differ in step
            for p, state in zip(params, states):
                bucket = buckets.setdefault((p.device, p.dtype, state["step"]), ([], []))
                bucket[0].append(p)
                bucket[1].append(state)
            for bucket_params, bucket_states in buckets.values():
                _multi_tensor_step(bucket_params, bucket_states, group)
        return loss

    def _count_step(self, p: torch.Tensor, amsbound: bool) -> dict:
        """``p``'s state, created at its first step, with ``step`` advanced to this step."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsbound and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        return state


class AMSBound(AdaBound):
    """AdaBound with the running maximum of the second moment (``amsbound=True``); see :class:`AdaBound`.

    References:
        Luo, Xiong, Liu, Sun. "Adaptive Gradient Methods with Dynamic Bound of Learning Rate." ICLR 2019.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, final_lr, gamma, eps, weight_decay,
            amsbound=True, decoupled_weight_decay=decoupled_weight_decay, foreach=foreach,
        )


class AdaBoundW(AdaBound):
    """AdaBound with decoupled weight decay ``p -= weight_decay·p`` (not scaled by lr); see :class:`AdaBound`.

    References:
        Luo, Xiong, Liu, Sun. "Adaptive Gradient Methods with Dynamic Bound of Learning Rate." ICLR 2019;
        Ilya Loshchilov, Frank Hutter. "Decoupled Weight Decay Regularization." ICLR 2019.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsbound: bool = False,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, final_lr, gamma, eps, weight_decay,
            amsbound=amsbound, decoupled_weight_decay=True, foreach=foreach,
        )
