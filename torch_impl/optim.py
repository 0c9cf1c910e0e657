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

# Group keys that hold hyperparameters (validated in ``add_param_group`` and at every eager step).
_BASE_LR = "base_lr"
_FLAGS = ("amsbound", "decoupled_weight_decay", "scale_decay_by_lr", "maximize", "capturable")


def _check_betas(value: Any) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise TypeError(f"`betas` must be a pair (beta1, beta2), got {value!r}")
    b1 = check_real("betas[0]", value[0], low=0.0, high=1.0, high_inclusive=False)
    b2 = check_real("betas[1]", value[1], low=0.0, high=1.0, high_inclusive=False)
    return b1, b2


def _check_lr(value: Any, *, at_step: bool, read_tensor: bool = True) -> Any:
    """A float lr, or a one-element floating tensor (kept as it is); > 0 when a group is built,
    >= 0 at a step (a schedule may reach 0). A tensor's value is read only if ``read_tensor``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"`lr` tensor must hold one element, got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"`lr` tensor must have a floating dtype, got {value.dtype}")
        if read_tensor:
            _check_lr(float(value), at_step=at_step)
        return value
    return check_real("lr", value, low=0.0, low_inclusive=at_step)


def _check_group(group: dict, *, at_step: bool = False, read_tensor: bool = True) -> None:
    """Validate (and normalise) one param group's hyperparameters in place.

    ``at_step``: the re-check before a step, where ``lr = 0`` is allowed (a schedule's value);
    when the group is built the lr must be > 0 (it is the base lr of the bounds)."""
    group["lr"] = _check_lr(group["lr"], at_step=at_step, read_tensor=read_tensor)
    group[_BASE_LR] = check_real("base_lr", group[_BASE_LR], low=0.0, low_inclusive=False)
    group["betas"] = _check_betas(group["betas"])
    group["final_lr"] = check_real("final_lr", group["final_lr"], low=0.0, low_inclusive=False)
    group["gamma"] = check_real("gamma", group["gamma"], low=0.0, high=1.0, high_inclusive=False)
    group["eps"] = check_real("eps", group["eps"], low=0.0)
    group["weight_decay"] = check_real("weight_decay", group["weight_decay"], low=0.0)
    for flag in _FLAGS:
        if not isinstance(group[flag], bool):
            raise TypeError(f"`{flag}` must be a bool, got {type(group[flag]).__name__} {group[flag]!r}")
    if group["scale_decay_by_lr"] and not group["decoupled_weight_decay"]:
        raise ValueError(
            "`scale_decay_by_lr=True` applies to the decoupled decay (AdaBoundW, "
            "`decoupled_weight_decay=True`); coupled L2 already goes through the learning rate"
        )
    foreach = group["foreach"]
    if foreach is not None and not isinstance(foreach, bool):
        raise TypeError(f"`foreach` must be None or a bool, got {type(foreach).__name__} {foreach!r}")


def _value(x: Any) -> float:
    """A Python float of a float or a one-element tensor (eager steps only: reads the tensor)."""
    return float(x) if isinstance(x, torch.Tensor) else x


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


def _schedule(group: dict, t: float, dtype: torch.dtype) -> tuple[float, float, float]:
    """``(step_size, lower, upper)`` at step ``t`` for a group's tensors of ``dtype``, as Python
    floats (float64 arithmetic), for the eager steps."""
    beta1, beta2 = group["betas"]
    lr = _value(group["lr"])
    step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
    lower, upper = _bounds(t, group["final_lr"] * lr / group[_BASE_LR], group["gamma"])
    if upper > torch.finfo(dtype).max:  # round to the tensor's dtype as a cast would
        upper = math.inf
    return step_size, lower, upper


def _schedule_tensors(group: dict, step: torch.Tensor, like: torch.Tensor):
    """:func:`_schedule` as 0-d tensors of ``like``'s dtype on its device, computed from the step
    tensor (and a tensor lr) without reading them: no host sync (``capturable``) and no value
    for ``torch.compile`` to specialise on. The scalars are computed in float64 (float32 where
    the device has no float64), then cast to ``like``'s dtype as the eager path's floats are."""
    dev = like.device
    wide = torch.float32 if dev.type == "mps" else torch.float64
    t = step.to(device=dev, dtype=wide)
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        lr = lr.reshape(()).to(device=dev, dtype=wide)
    beta1, beta2 = group["betas"]
    step_size = lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t)
    final = group["final_lr"] * lr / group[_BASE_LR]
    gamma = group["gamma"]
    gt = gamma * t
    lower = final * gt / (gt + 1.0)
    if gamma > 0:  # γt >= γ > 0: final + final/γt is never 0·inf
        upper = final + final / gt
    else:
        upper = torch.full((), math.inf, dtype=wide, device=dev)
    step_size = step_size + torch.zeros((), dtype=wide, device=dev)  # a tensor even for a float lr
    lower = lower + torch.zeros((), dtype=wide, device=dev)
    dtype = like.dtype
    return step_size.to(dtype), lower.to(dtype), upper.to(dtype)


def _decay_factor(group: dict, like: torch.Tensor | None = None) -> Any:
    """The decoupled decay's factor: ``weight_decay`` (reference) or ``lr·weight_decay``
    (``scale_decay_by_lr``). A Python float for the eager steps (``like`` None); with ``like``,
    a tensor lr stays a tensor (computed in float64, then in ``like``'s compute dtype)."""
    wd = group["weight_decay"]
    if not group["scale_decay_by_lr"]:
        return wd
    lr = group["lr"]
    if like is None or not isinstance(lr, torch.Tensor):
        return _value(lr) * wd
    wide = torch.float32 if like.device.type == "mps" else torch.float64
    factor = lr.reshape(()).to(device=like.device, dtype=wide) * wd
    return factor.to(torch.promote_types(like.dtype, torch.float32))


# What torch.optim's own default rule (``_default_to_fused_or_foreach``) accepts for foreach.
_FOREACH_DEVICE_TYPES = ("cuda", "xpu", "mtia")
_FOREACH_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _default_foreach(params: list[torch.Tensor]) -> bool:
    """torch's default: multi-tensor kernels when every parameter is a plain tensor on a device
    that runs them natively (CUDA, XPU, MTIA); on CPU they are only a loop over the same ops."""
    return all(type(p) in _FOREACH_TENSOR_TYPES and p.device.type in _FOREACH_DEVICE_TYPES for p in params)


def _single_tensor_step(p: torch.Tensor, state: dict, group: dict, *, tensor_scalars: bool) -> None:
    """The update of one parameter (``state["step"]`` already counts this step).

    ``tensor_scalars``: the schedule and a tensor lr stay tensors (``torch.compile``,
    ``capturable``); otherwise they are read as Python floats (eager)."""
    beta1, beta2 = group["betas"]
    wd, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
    grad, exp_avg, exp_avg_sq = p.grad, state["exp_avg"], state["exp_avg_sq"]
    if group["maximize"]:
        grad = -grad
    if wd != 0 and not decoupled:
        grad = grad.add(p, alpha=wd)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if group["amsbound"]:
        torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        exp_avg_sq = state["max_exp_avg_sq"]
    denom = exp_avg_sq.sqrt().add_(group["eps"])
    if tensor_scalars:
        step_size, lower, upper = _schedule_tensors(group, state["step"], denom)
        update = torch.div(step_size, denom).clamp_(lower, upper).mul_(exp_avg)
    else:
        step_size, lower, upper = _schedule(group, state["step"].item(), denom.dtype)
        update = torch.full_like(denom, step_size).div_(denom).clamp_(lower, upper).mul_(exp_avg)
    if wd != 0 and decoupled:
        decay = p.mul(_decay_factor(group, p if tensor_scalars else None))
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
    if group["maximize"]:
        grads = torch._foreach_neg(grads)
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
    step_size, lower, upper = _schedule(group, states[0]["step"].item(), denom[0].dtype)
    # full_like(denom, step_size) without a kernel per tensor: 0 + step_size rounds as the fill does
    update = [torch.empty_like(d) for d in denom]
    torch._foreach_zero_(update)
    torch._foreach_add_(update, step_size)
    torch._foreach_div_(update, denom)
    torch._foreach_clamp_min_(update, lower)  # = clamp_(lower, upper): lower <= upper always
    torch._foreach_clamp_max_(update, upper)
    torch._foreach_mul_(update, exp_avgs)
    if wd != 0 and decoupled:
        decay = _mul_all(params, _decay_factor(group), inplace=False)
        torch._foreach_sub_(params, update)
        torch._foreach_sub_(params, decay)
    else:
        torch._foreach_sub_(params, update)


class AdaBound(torch.optim.Optimizer):
    r"""AdaBound (Adam whose per-element step is clipped into a band that shrinks to SGD's).

    For each parameter ``p`` with gradient ``g`` at step ``t`` (starting at 1)::

        g   = -g                                      (maximize only)
        g   = g + weight_decay·p                      (coupled L2; not when decoupled)
        m   = β1·m + (1-β1)·g
        v   = β2·v + (1-β2)·g²                        AMSBound: v̂ = max(v̂, v); v̂ is used below
        step_size = lr·sqrt(1-β2^t)/(1-β1^t)
        final     = final_lr·lr/base_lr
        lower     = final·(1 - 1/(γt + 1)),   upper = final·(1 + 1/(γt))
        p   = p - clip(step_size/(sqrt(v) + eps), lower, upper)·m
        p   = p - weight_decay·p_old                  (AdaBoundW: decoupled, the reference's)
        p   = p - lr·weight_decay·p_old               (AdaBoundW with scale_decay_by_lr: AdamW's)

    ``base_lr`` is the lr a param group was created with; it is stored in the group (key
    ``"base_lr"``, a float), so a ``torch.optim.lr_scheduler`` that changes ``lr`` scales the
    bounds too (``final`` follows ``lr/base_lr``), ``state_dict()`` saves it and
    ``load_state_dict()`` restores it, and groups added with :meth:`add_param_group` get their
    own (a group dict may also set ``"base_lr"`` explicitly). State (``step``, ``exp_avg``,
    ``exp_avg_sq`` and ``max_exp_avg_sq`` for AMSBound) is created lazily at a parameter's first
    step, in the parameter's dtype and device; ``step`` is a 0-d float32 tensor as in
    ``torch.optim.Adam`` (on the parameter's device with ``capturable``, else on the CPU).

    **Compiled loops.** ``lr`` may be a one-element tensor (as ``torch.optim.Adam`` accepts);
    schedulers update it in place. Under ``torch.compile`` the schedule is computed with tensor
    ops from the step and lr tensors (float64 scalars), so ``torch.compile(optimizer.step)``
    compiles once for a whole lr schedule (plus once after the first step creates the state,
    as for Adam). A tensor lr is never specialised on; a *float* lr is a graph input only as
    long as torch does not specialise floats (``torch._dynamo.config.specialize_float``, off by
    default in current torch), so prefer a tensor lr in compiled loops. Eagerly, the step and a
    tensor lr are read as Python floats (one host read each, as Adam does) and the schedule is
    computed in float64 — the same numbers for a float or a tensor lr.

    Args:
        params: parameters or param-group dicts (real floating tensors; complex ones are
            refused: optimize ``torch.view_as_real(p)`` instead).
        lr: Adam learning rate, > 0 (it is also the base lr of the bounds): a float or a
            one-element floating tensor.
        betas: ``(β1, β2)``, each in [0, 1).
        final_lr: the SGD learning rate both bounds converge to, > 0.
        gamma: convergence speed of the bounds, in [0, 1); 0 gives ``[0, inf)`` (plain Adam).
        eps: added to ``sqrt(v)``, >= 0.
        weight_decay: >= 0; coupled L2 (added to the gradient) unless ``decoupled_weight_decay``.
        amsbound: use the running maximum of ``v`` (AMSBound).
        decoupled_weight_decay: AdaBoundW: ``p -= weight_decay·p`` after the step.
        scale_decay_by_lr: AdaBoundW only: ``p -= lr·weight_decay·p`` (``torch.optim.AdamW``'s
            decay, scaled by the current learning rate) instead of the reference's unscaled
            decay. Default ``False`` (the reference's); see the warning below.
        maximize: maximize the objective (ascend the gradient), as ``torch.optim.Adam``.
        capturable: keep the step on the parameter's device and never read a tensor to the
            host during :meth:`step` (for CUDA graphs); the schedule is then computed with
            tensor ops and the per-tensor loop is used. The eager value checks of a tensor lr
            are skipped then.
        foreach: update a group's parameters with multi-tensor ``torch._foreach_*`` kernels
            (about fifteen kernel launches per step instead of a dozen per parameter) or one
            tensor at a time (``False``). ``None`` (default) is torch's own optimizers' rule:
            foreach when every parameter with a gradient is a plain tensor on CUDA (or XPU,
            MTIA), else the per-tensor loop — on CPU foreach ops are a loop over the same ops,
            and slower, since a whole group's temporaries fall out of cache. ``True`` works on
            any device. Same operations in the same order: bit-identical to the loop on CPU (on
            a GPU the two kernels may round the last bit differently). Foreach holds a group's
            temporaries at once: two to three extra copies of its parameters at peak. Stored in
            each param group (key ``"foreach"``), so ``state_dict()`` carries it. Under
            ``torch.compile`` and with ``capturable`` the per-tensor loop is traced (the
            compiler fuses it).

    Every eager :meth:`step` re-checks each group's hyperparameters (a value set on
    ``param_groups`` after construction, e.g. a negative or NaN lr, raises a ``ValueError``
    naming it; ``lr = 0`` is allowed there); compiled steps skip the check.

    .. warning:: Differences from the reference implementation (Luolc/AdaBound):
       ``base_lr`` lives in the param group, so :meth:`add_param_group` works (the reference
       silently never updates a group added later) and a resumed optimizer keeps the base lr it
       was created with (the reference re-reads it from the current, possibly scheduled, lr).
       The lower bound is computed as ``final·γt/(γt+1)``, equal to the reference's
       ``final·(1 - 1/(γt+1))`` up to rounding. ``gamma = 0`` is accepted (``upper = inf``).

    .. warning:: AdaBoundW's default decay ``p -= weight_decay·p`` is *not* multiplied by the
       learning rate, as in the paper's reference AdaBoundW; ``torch.optim.AdamW`` multiplies
       by ``lr``, so its ``weight_decay`` values do not carry over, an lr schedule does not
       scale this decay, and a step with ``lr = 0`` still shrinks the weights (e.g. the lr = 0
       step ``torch.distributed.checkpoint`` takes to initialise optimizer state). The default
       stays the reference's so that published AdaBoundW settings reproduce and existing runs
       keep their meaning; ``scale_decay_by_lr=True`` gives AdamW's decay, with which an
       ``lr = 0`` step leaves the weights unchanged.

    References:
        Liangchen Luo, Yuanhao Xiong, Yan Liu, Xu Sun. "Adaptive Gradient Methods with Dynamic
        Bound of Learning Rate." ICLR 2019.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsbound: bool = False,
        decoupled_weight_decay: bool = False,
        *,
        scale_decay_by_lr: bool = False,
        maximize: bool = False,
        capturable: bool = False,
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
            scale_decay_by_lr=scale_decay_by_lr,
            maximize=maximize,
            capturable=capturable,
            foreach=foreach,
        )
        # Validate the defaults once up front so a bad argument is reported as that argument,
        # even for an empty-looking call.
        _check_lr(lr, at_step=False)
        _check_group({**defaults, _BASE_LR: _value(lr)})
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group; its ``base_lr`` defaults to its own ``lr`` (the bounds scale by lr/base_lr)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for i, p in enumerate(group["params"]):
                if p.is_complex():
                    raise TypeError(
                        f"AdaBound does not support complex parameters: `params` (group "
                        f"{len(self.param_groups) - 1}, parameter {i}) is {p.dtype}; optimize "
                        "torch.view_as_real(p) (a real view of it) instead"
                    )
            group["lr"] = _check_lr(group["lr"], at_step=False)
            group.setdefault(_BASE_LR, _value(group["lr"]))
            _check_group(group)
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # pickles and state dicts made before these keys existed
            group.setdefault(_BASE_LR, _value(group["lr"]))
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("amsbound", False)
            group.setdefault("foreach", None)
            group.setdefault("scale_decay_by_lr", False)
            group.setdefault("maximize", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if "step" in p_state and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = self._step_tensor(float(p_state["step"]), p, group["capturable"])

    @staticmethod
    def _step_tensor(value: float, p: torch.Tensor, capturable: bool) -> torch.Tensor:
        """A step counter as ``torch.optim.Adam`` keeps it: a 0-d float32 (float64 when that is
        the default dtype) tensor, on ``p``'s device with ``capturable``, else on the CPU."""
        dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        return torch.tensor(value, dtype=dtype, device=p.device if capturable else "cpu")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        """One AdaBound step for every parameter that has a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        compiling = torch.compiler.is_compiling()
        for group in self.param_groups:
            if not compiling:
                _check_group(group, at_step=True, read_tensor=not group["capturable"])
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdaBound does not support sparse gradients")
            states = [self._count_step(p, group) for p in params]
            tensor_scalars = compiling or group["capturable"]
            foreach = _default_foreach(params) if group["foreach"] is None else group["foreach"]
            if tensor_scalars or not foreach:
                for p, state in zip(params, states):
                    _single_tensor_step(p, state, group, tensor_scalars=tensor_scalars)
                continue
            buckets: dict[tuple, tuple[list, list]] = {}  # lazily created states may differ in step
            for p, state in zip(params, states):
                bucket = buckets.setdefault((p.device, p.dtype, state["step"].item()), ([], []))
                bucket[0].append(p)
                bucket[1].append(state)
            for bucket_params, bucket_states in buckets.values():
                _multi_tensor_step(bucket_params, bucket_states, group)
        return loss

    def _count_step(self, p: torch.Tensor, group: dict) -> dict:
        """``p``'s state, created at its first step, with ``step`` advanced to this step."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = self._step_tensor(0.0, p, group["capturable"])
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif not torch.is_tensor(state["step"]):
            state["step"] = self._step_tensor(float(state["step"]), p, group["capturable"])
        if group["amsbound"] and "max_exp_avg_sq" not in state:
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
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        scale_decay_by_lr: bool = False,
        maximize: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, final_lr, gamma, eps, weight_decay,
            amsbound=True, decoupled_weight_decay=decoupled_weight_decay,
            scale_decay_by_lr=scale_decay_by_lr, maximize=maximize, capturable=capturable, foreach=foreach,
        )


class AdaBoundW(AdaBound):
    """AdaBound with decoupled weight decay; see :class:`AdaBound`.

    The default decay is the reference AdaBoundW's, ``p -= weight_decay·p``, not scaled by the
    learning rate (so published settings reproduce; it moves the weights even at ``lr = 0``).
    ``scale_decay_by_lr=True`` gives ``torch.optim.AdamW``'s ``p -= lr·weight_decay·p``, which
    an lr schedule scales and an ``lr = 0`` step leaves alone.

    References:
        Luo, Xiong, Liu, Sun. "Adaptive Gradient Methods with Dynamic Bound of Learning Rate." ICLR 2019;
        Ilya Loshchilov, Frank Hutter. "Decoupled Weight Decay Regularization." ICLR 2019.
    """

    def __init__(
        self,
        params,
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsbound: bool = False,
        *,
        scale_decay_by_lr: bool = False,
        maximize: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, final_lr, gamma, eps, weight_decay,
            amsbound=amsbound, decoupled_weight_decay=True,
            scale_decay_by_lr=scale_decay_by_lr, maximize=maximize, capturable=capturable, foreach=foreach,
        )
