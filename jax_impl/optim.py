"""AdaBound, AMSBound and AdaBoundW as optax ``GradientTransformation``\\ s.

The torch twin is :mod:`torch_impl.optim`; both follow the same step (written out in
:func:`adabound`), and ``parity`` feeds them the same gradients and compares trajectories.

Hyperparameters may be Python numbers or jax scalars (so :func:`optax.inject_hyperparams` can
inject them). They are validated when they are concrete; under ``jit`` (traced values, as inside
``inject_hyperparams``'s update) the value checks are skipped.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from jax_impl._checks import is_concrete
from twintricks.checks import check_real

__all__ = ["ScaleByAdaBoundState", "scale_by_adabound", "adabound", "amsbound", "adaboundw"]

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


class ScaleByAdaBoundState(NamedTuple):
    """State of :func:`scale_by_adabound`.

    ``count`` (int32 scalar) is the number of steps taken; ``mu``/``nu`` are the first and
    second moment estimates (same tree and dtypes as the params); ``nu_max`` is their running
    maximum for AMSBound and ``None`` otherwise.
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: Optional[optax.Updates]


def _hparam(name: str, value: Any, **interval) -> Any:
    """Check a scalar hyperparameter that may be a number or a jax scalar (skipped if traced)."""
    if isinstance(value, (bool, str)) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Real):
        return check_real(name, value, **interval)
    if getattr(value, "shape", ()) != ():
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(value.shape)}")
    if is_concrete(value):
        check_real(name, float(value), **interval)
    return value


def _log(beta: Any) -> Any:
    """log(β) for the bias corrections, in float64 at trace time when β is a Python number."""
    if isinstance(beta, numbers.Real):
        return math.log(beta) if beta > 0 else -math.inf
    return jnp.log(beta)


def _check_mu_dtype(mu_dtype: Any) -> Any:
    """``None`` or a floating dtype, canonicalised (float64 becomes float32 without x64)."""
    if mu_dtype is None:
        return None
    try:
        dtype = jax.dtypes.canonicalize_dtype(mu_dtype)
    except TypeError:
        raise TypeError(f"`mu_dtype` must be None or a floating dtype, got {mu_dtype!r}") from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`mu_dtype` must be None or a floating dtype, got {dtype}")
    return dtype


def _leaf_update(g, m, v, v_max, *, b1, b2, eps, step_size, lower, upper, amsbound):
    """One leaf's step in the second moment's dtype (the params'); ``m`` is widened from its
    stored ``mu_dtype`` for the step and stored back in it (as ``optax.scale_by_adam``)."""
    dtype = v.dtype
    mu_dtype = m.dtype
    g = g.astype(dtype)
    m = (b1 * m.astype(dtype) + (1 - b1) * g).astype(dtype)
    v = (b2 * v + (1 - b2) * g * g).astype(dtype)
    if amsbound:
        v_max = jnp.maximum(v_max, v)
        denom = jnp.sqrt(v_max) + jnp.asarray(eps, dtype)
    else:
        denom = jnp.sqrt(v) + jnp.asarray(eps, dtype)
    eff = jnp.clip(step_size.astype(dtype) / denom, lower.astype(dtype), upper.astype(dtype))
    return (eff * m).astype(dtype), m.astype(mu_dtype), v, v_max


def scale_by_adabound(
    learning_rate: ScalarOrSchedule,
    *,
    final_lr: float = 0.1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    eps: float = 1e-8,
    amsbound: bool = False,
    base_lr: Optional[float] = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
    r"""Rescale updates by AdaBound's clipped Adam step: ``clip(step_size/(sqrt(v)+eps), lower, upper)·m``.

    The output is the *descent direction* (positive), to be negated (:func:`adabound` chains
    ``optax.scale(-1)``). The learning rate is part of this transformation because the clip
    interval is in learning-rate units. With ``t = count + 1`` and ``lr_t = learning_rate(count)``
    (or the constant)::

        m = b1·m + (1-b1)·g;   v = b2·v + (1-b2)·g²;   AMSBound: v_max = max(v_max, v), used for v
        step_size = lr_t·sqrt(1-b2^t)/(1-b1^t)
        final = final_lr·lr_t/base_lr
        lower = final·γt/(γt+1),   upper = final + final/(γt)   (inf when γ = 0)

    Args:
        learning_rate: a float > 0 or an optax schedule ``count -> lr``.
        final_lr: the SGD learning rate the bounds converge to (for ``lr_t = base_lr``), > 0.
        b1, b2: moment decay rates in [0, 1).
        gamma: convergence speed of the bounds, in [0, 1).
        eps: added to ``sqrt(v)``, >= 0.
        amsbound: keep the running maximum of ``v`` (AMSBound).
        base_lr: the lr at which the bounds are ``final_lr``; defaults to ``learning_rate`` (a
            float) or ``learning_rate(0)`` (a schedule, which must then not start at 0).
        mu_dtype: the dtype of the first moment ``mu`` as stored in the state (as
            ``optax.scale_by_adam``'s), e.g. ``jnp.bfloat16`` to halve its memory; ``None``
            (default) keeps the params' dtype. The step itself widens ``mu`` to the params'
            dtype and rounds it once when storing it.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdaBoundState`. Updates,
        ``nu`` and ``nu_max`` keep the params' dtypes (float32, bfloat16, ...), ``mu`` too
        unless ``mu_dtype`` is given. The scalar schedule
        quantities are computed in jax's default float (float64 only with x64 enabled) and cast
        to each leaf's dtype; the bias corrections use ``-expm1(t·log β)`` with ``log β``
        taken in float64 at trace time, so ``1 - β^t`` is accurate in float32 too.
    """
    scheduled = callable(learning_rate)
    if not scheduled:
        learning_rate = _hparam("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    final_lr = _hparam("final_lr", final_lr, low=0.0, low_inclusive=False)
    b1 = _hparam("b1", b1, low=0.0, high=1.0, high_inclusive=False)
    b2 = _hparam("b2", b2, low=0.0, high=1.0, high_inclusive=False)
    gamma = _hparam("gamma", gamma, low=0.0, high=1.0, high_inclusive=False)
    eps = _hparam("eps", eps, low=0.0)
    if not isinstance(amsbound, bool):
        raise TypeError(f"`amsbound` must be a bool, got {type(amsbound).__name__} {amsbound!r}")
    mu_dtype = _check_mu_dtype(mu_dtype)
    if base_lr is None:
        base_lr = learning_rate(0) if scheduled else learning_rate
        if scheduled and is_concrete(base_lr) and not float(base_lr) > 0:
            raise ValueError(
                f"`learning_rate(0)` must be > 0 to serve as the base lr of the bounds, got "
                f"{float(base_lr)!r}; pass `base_lr` explicitly (e.g. for a warm-up from 0)"
            )
    else:
        base_lr = _hparam("base_lr", base_lr, low=0.0, low_inclusive=False)
    log_b1, log_b2 = _log(b1), _log(b2)

    def init_fn(params):
        mu = optax.tree.zeros_like(params, dtype=mu_dtype)
        nu = optax.tree.zeros_like(params)
        nu_max = optax.tree.zeros_like(params) if amsbound else None
        return ScaleByAdaBoundState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu, nu_max=nu_max)

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.result_type(float))
        lr_t = learning_rate(state.count) if scheduled else learning_rate
        if not isinstance(lr_t, numbers.Real):  # a float32 schedule value under x64: widen it
            lr_t = jnp.asarray(lr_t).astype(t.dtype)
        bias1 = -jnp.expm1(t * log_b1)  # 1 - b1^t
        bias2 = -jnp.expm1(t * log_b2)  # 1 - b2^t
        step_size = jnp.asarray(lr_t * jnp.sqrt(bias2) / bias1)
        final = final_lr * lr_t / base_lr
        gt = gamma * t
        lower = jnp.asarray(final * gt / (gt + 1))  # = final·(1 - 1/(γt+1)), without cancellation
        # final + final/γt = final·(1 + 1/γt), but 0 (not 0·inf = NaN) when lr_t = 0 and γt tiny
        upper = jnp.where(gt > 0, final + final / jnp.where(gt > 0, gt, 1), jnp.inf)

        nu_max = state.nu_max if amsbound else state.nu
        out = jax.tree.map(
            lambda g, m, v, vm: _leaf_update(
                g, m, v, vm, b1=b1, b2=b2, eps=eps, step_size=step_size,
                lower=lower, upper=upper, amsbound=amsbound,
            ),
            updates, state.mu, state.nu, nu_max,
        )
        treedef = jax.tree.structure(updates)
        leaves = treedef.flatten_up_to(out)
        new_updates, mu, nu, vm = (treedef.unflatten(x) for x in zip(*leaves)) if leaves else (updates,) * 4
        return new_updates, ScaleByAdaBoundState(
            count=count, mu=mu, nu=nu, nu_max=vm if amsbound else None
        )

    return optax.GradientTransformation(init_fn, update_fn)


def _add_decayed_weights(weight_decay: Any, learning_rate: Optional[ScalarOrSchedule] = None) -> optax.GradientTransformation:
    """``updates + weight_decay·params`` in the updates' dtype (identity for a literal 0).

    With ``learning_rate`` (AdamW's decay) the factor is ``lr_t·weight_decay``, ``lr_t`` the
    step's learning rate; a schedule needs the step count, kept in an
    ``optax.ScaleByScheduleState``."""
    if isinstance(weight_decay, numbers.Real) and weight_decay == 0:
        return optax.identity()
    scheduled = callable(learning_rate)

    def init_fn(params):
        del params
        if scheduled:
            return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("adabound with weight_decay != 0 needs `params` in update(...)")
        if learning_rate is None:
            factor = weight_decay
        elif scheduled:
            factor = learning_rate(state.count) * weight_decay
            state = optax.ScaleByScheduleState(count=optax.safe_increment(state.count))
        else:
            factor = learning_rate * weight_decay
        updates = jax.tree.map(lambda g, p: (g + factor * p).astype(g.dtype), updates, params)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def adabound(
    learning_rate: ScalarOrSchedule,
    *,
    final_lr: float = 0.1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsbound: bool = False,
    decoupled_weight_decay: bool = False,
    base_lr: Optional[float] = None,
    scale_decay_by_lr: bool = False,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
    r"""AdaBound: Adam whose per-element step is clipped into a band that shrinks to SGD's.

    For each leaf ``p`` with gradient ``g`` at step ``t = count + 1`` (``lr_t = learning_rate(count)``
    for a schedule)::

        g   = g + weight_decay·p                      (coupled L2; not when decoupled)
        m   = b1·m + (1-b1)·g
        v   = b2·v + (1-b2)·g²                        AMSBound: v̂ = max(v̂, v); v̂ is used below
        step_size = lr_t·sqrt(1-b2^t)/(1-b1^t)
        final     = final_lr·lr_t/base_lr
        lower     = final·(1 - 1/(γt + 1)),   upper = final·(1 + 1/(γt))
        update    = -clip(step_size/(sqrt(v) + eps), lower, upper)·m
        update   -= weight_decay·p                    (AdaBoundW: decoupled, the reference's)
        update   -= lr_t·weight_decay·p               (AdaBoundW with scale_decay_by_lr: AdamW's)

    It is ``chain(add_decayed_weights, scale_by_adabound, scale(-1))`` (AdaBoundW:
    ``chain(scale_by_adabound, add_decayed_weights, scale(-1))``); apply it with
    ``optax.apply_updates``. The state of :func:`scale_by_adabound` is the second element of the
    chain's state tuple (the first for AdaBoundW). With ``scale_decay_by_lr`` and a schedule the
    decay keeps its own step count (an ``optax.ScaleByScheduleState``).

    Args:
        learning_rate: a float > 0 or an optax schedule; with a schedule the bounds follow
            ``lr_t/base_lr`` (the same as a ``torch.optim.lr_scheduler`` on
            :class:`torch_impl.optim.AdaBound`).
        final_lr, b1, b2, gamma, eps: see :func:`scale_by_adabound`.
        weight_decay: >= 0; coupled L2 unless ``decoupled_weight_decay``.
        amsbound: AMSBound (running maximum of ``v``).
        decoupled_weight_decay: AdaBoundW.
        scale_decay_by_lr: AdaBoundW only: the decay is ``lr_t·weight_decay·p``
            (``optax.adamw``'s, scaled by the step's learning rate) instead of the reference's
            unscaled ``weight_decay·p``. Default ``False``; see the warning below.
        mu_dtype: the dtype the first moment is stored in; see :func:`scale_by_adabound`.
        base_lr: defaults to ``learning_rate`` or ``learning_rate(0)``. torch_impl's base lr is
            the lr the optimizer was built with, so for a ``LambdaLR`` whose factor at epoch 0 is
            not 1 (a warm-up) pass that lr here. Under :func:`optax.inject_hyperparams` the
            factory is rebuilt every step with the *current* lr, so pass ``base_lr`` there if the
            bounds should follow an injected schedule.

    .. warning:: AdaBoundW's default decay ``weight_decay·p`` is *not* multiplied by the learning
       rate, as in the reference AdaBoundW; ``optax.adamw`` multiplies it by the learning rate,
       so its ``weight_decay`` values do not carry over, a schedule does not scale this decay,
       and a step at ``lr = 0`` still shrinks the weights. The default stays the reference's so
       that published settings reproduce and existing runs keep their meaning;
       ``scale_decay_by_lr=True`` gives AdamW's decay (an ``lr = 0`` step changes nothing).

    .. warning:: The bounds are evaluated as ``final·γt/(γt+1)`` and ``final + final/(γt)``, ``1 - β^t`` as
       ``-expm1(t·log β)``: equal to the formula above, but without float32 cancellation, so
       float32 results differ from a literal float32 transcription (and from the torch twin,
       which evaluates these scalars in float64) by rounding only.

    References:
        Liangchen Luo, Yuanhao Xiong, Yan Liu, Xu Sun. "Adaptive Gradient Methods with Dynamic
        Bound of Learning Rate." ICLR 2019.
    """
    weight_decay = _hparam("weight_decay", weight_decay, low=0.0)
    if not isinstance(decoupled_weight_decay, bool):
        raise TypeError(
            f"`decoupled_weight_decay` must be a bool, got {type(decoupled_weight_decay).__name__} "
            f"{decoupled_weight_decay!r}"
        )
    if not isinstance(scale_decay_by_lr, bool):
        raise TypeError(f"`scale_decay_by_lr` must be a bool, got {type(scale_decay_by_lr).__name__} {scale_decay_by_lr!r}")
    if scale_decay_by_lr and not decoupled_weight_decay:
        raise ValueError(
            "`scale_decay_by_lr=True` applies to the decoupled decay (adaboundw, "
            "`decoupled_weight_decay=True`); coupled L2 already goes through the learning rate"
        )
    core = scale_by_adabound(
        learning_rate, final_lr=final_lr, b1=b1, b2=b2, gamma=gamma, eps=eps,
        amsbound=amsbound, base_lr=base_lr, mu_dtype=mu_dtype,
    )
    decay = _add_decayed_weights(weight_decay, learning_rate if scale_decay_by_lr else None)
    if decoupled_weight_decay:
        return optax.chain(core, decay, optax.scale(-1.0))
    return optax.chain(decay, core, optax.scale(-1.0))


def amsbound(
    learning_rate: ScalarOrSchedule,
    *,
    final_lr: float = 0.1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    base_lr: Optional[float] = None,
    scale_decay_by_lr: bool = False,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
    """AMSBound: :func:`adabound` with ``amsbound=True`` (the running maximum of ``v``).

    References:
        Luo, Xiong, Liu, Sun. "Adaptive Gradient Methods with Dynamic Bound of Learning Rate." ICLR 2019.
    """
    return adabound(
        learning_rate, final_lr=final_lr, b1=b1, b2=b2, gamma=gamma, eps=eps,
        weight_decay=weight_decay, amsbound=True, decoupled_weight_decay=decoupled_weight_decay,
        base_lr=base_lr, scale_decay_by_lr=scale_decay_by_lr, mu_dtype=mu_dtype,
    )


def adaboundw(
    learning_rate: ScalarOrSchedule,
    *,
    final_lr: float = 0.1,
    b1: float = 0.9,
    b2: float = 0.999,
    gamma: float = 1e-3,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsbound: bool = False,
    base_lr: Optional[float] = None,
    scale_decay_by_lr: bool = False,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
    """AdaBoundW: :func:`adabound` with decoupled weight decay.

    The default decay is the reference AdaBoundW's, ``-weight_decay·p``, not scaled by the
    learning rate (published settings reproduce; it moves the weights even at ``lr = 0``).
    ``scale_decay_by_lr=True`` gives ``optax.adamw``'s ``-lr_t·weight_decay·p``, which a
    schedule scales and an ``lr = 0`` step leaves alone.

    References:
        Luo, Xiong, Liu, Sun. "Adaptive Gradient Methods with Dynamic Bound of Learning Rate." ICLR 2019;
        Ilya Loshchilov, Frank Hutter. "Decoupled Weight Decay Regularization." ICLR 2019.
    """
    return adabound(
        learning_rate, final_lr=final_lr, b1=b1, b2=b2, gamma=gamma, eps=eps,
        weight_decay=weight_decay, amsbound=amsbound, decoupled_weight_decay=True, base_lr=base_lr,
        scale_decay_by_lr=scale_decay_by_lr, mu_dtype=mu_dtype,
    )
