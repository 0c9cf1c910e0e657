"""Check your own port: a torch ``nn.Module`` against a flax module (linen or NNX).

The weights are converted by :mod:`parity.weightmap` (:func:`map_weights`, :func:`torch_to_flax`,
:func:`flax_to_torch`, re-exported here). :func:`check_module` / :func:`module_check` compare the
two modules on hypothesis-drawn inputs (eval-mode outputs; train-mode outputs, input and
parameter gradients; the BatchNorm running statistics after one training-mode step; dropout off
on both sides) within a tolerance calibrated from the torch module run in float64, and, when
they disagree, *localise*: the first layer whose input or output differs (torch forward hooks;
flax ``nn.intercept_methods`` for linen, each submodule's ``__call__`` for NNX), the size of the
difference, and what differs in the two layers' settings (padding, stride, ``eps``,
``momentum``, flatten order).

.. warning:: flax's own BatchNorm (``flax.linen.BatchNorm``, ``nnx.BatchNorm``) writes the
   running average as ``running = m·running + (1 - m)·batch`` — torch's ``momentum=0.1`` is
   flax's ``momentum=0.9`` — and keeps the *biased* batch variance in ``var`` where torch keeps
   the unbiased one. The first is a port bug the check reports; the second is the frameworks'
   convention, reported as such, and accepted with ``accept=["biased_running_var"]``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Mapping

import numpy as np

from parity.convert import images_from_torch, images_to_torch, to_jax, to_numpy, to_torch
from parity.registry import Trick
from parity.weightmap import (  # noqa: F401  (re-exported: parity.modules was their home)
    BIASED_RUNNING_VAR,
    ConversionError,
    Entry,
    WeightMap,
    _canon,
    _flax_flat,
    _is_linen,
    _is_nnx,
    _nnx_modules,
    _path_str,
    _torch_kind,
    flax_to_torch,
    map_weights,
    torch_to_flax,
)

__all__ = [
    "ConversionError",
    "WeightMap",
    "map_weights",
    "torch_to_flax",
    "flax_to_torch",
    "module_check",
    "check_module",
    "localise",
    "input_batches",
    "BIASED_RUNNING_VAR",
    "Entry",
]


# --------------------------------------------------------------------------- running both sides


def _channels_first(arr: np.ndarray, kind: str | None) -> bool:
    return arr.ndim == 4 or (arr.ndim >= 3 and kind in ("conv", "batchnorm"))


def _act_to_flax(arr, kind) -> np.ndarray:
    arr = to_numpy(arr)
    if _channels_first(arr, kind):
        arr = np.moveaxis(arr, 1, -1)
    return np.ascontiguousarray(arr)


@dataclasses.dataclass
class _Call:
    name: str
    module: Any
    input: Any
    output: Any
    order: int


def _first_array(args):
    for a in args:
        if hasattr(a, "shape"):
            return a
    return None


def _torch_forward(module, x, *, train: bool, capture: bool):
    """Output (and, with ``capture``, the calls of every submodule in start order) of ``module(x)``."""
    import torch

    calls: dict[str, _Call] = {}
    handles = []
    counter = [0]
    if capture:
        for name, sub in module.named_modules():
            if not name:
                continue

            def pre(mod, args, name=name):
                if name not in calls:
                    calls[name] = _Call(name, mod, _first_array(args), None, counter[0])
                    counter[0] += 1

            def post(mod, args, out, name=name):
                if name in calls and calls[name].output is None and isinstance(out, torch.Tensor):
                    calls[name].output = out.detach().clone()

            handles.append(sub.register_forward_pre_hook(pre))
            handles.append(sub.register_forward_hook(post))
    module.train(train)
    _dropout_off(module)
    try:
        with torch.no_grad():
            out = module(x)
    finally:
        for h in handles:
            h.remove()
    return out, sorted(calls.values(), key=lambda c: c.order)


class _Flax:
    """Calls a linen module with its variables, or an NNX module, in eval or train mode."""

    def __init__(self, module, variables, train_arg):
        self.module, self.variables, self.train_arg = module, variables, train_arg
        self.nnx = _is_nnx(module)
        if not self.nnx and not _is_linen(module):
            raise TypeError(f"flax_module must be a flax.linen or flax.nnx Module, got {type(module).__name__}")
        if not self.nnx and variables is None:
            raise TypeError("a linen module needs its variables (variables=model.init(...) or converted ones)")

    def _kw(self, train):
        return {} if self.train_arg is None else {self.train_arg: train}

    def _nnx_model(self, train):
        """A clone in the NNX mode (``.train()`` / ``.eval()``), dropout off in training mode."""
        from flax import nnx

        model = nnx.clone(self.module)
        model.train() if train else model.eval()
        if train:
            for _, sub in nnx.iter_graph(model):
                if isinstance(sub, nnx.Dropout):
                    sub.deterministic = True
        return model

    def _linen_kw(self, train):
        """Linen keywords: the train flag and, in training mode, rngs for any stream a layer asks
        for (dropout itself is intercepted: identity)."""
        import jax

        kw = self._kw(train)
        if train:
            kw["rngs"] = {"dropout": jax.random.key(0), "params": jax.random.key(1)}
        return kw
    def forward(self, x, *, train: bool, capture: bool = False):
        """``(output, new flat batch stats or None, calls)``."""
        calls: list = []
        if self.nnx:

            model = self._nnx_model(train)
            if capture:
                with _nnx_capture(model, calls):
                    out = model(x, **self._kw(train))
            else:
                out = model(x, **self._kw(train))
            return out, (_flax_flat(model) if train else None), calls
        import flax.linen as nn

        mutable = ["batch_stats"] if (train and "batch_stats" in self.variables) else False

        def interceptor(next_fun, args, kwargs, context):
            if train and isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
                out = args[0]  # dropout off in training mode (see _dropout_off)
                return out
            out = next_fun(*args, **kwargs)
            if capture and context.method_name == "__call__":
                path = tuple(context.module.path)
                if path and not any(c.name == path for c in calls):
                    calls.append(_Call(path, context.module, _first_array(args), out, len(calls)))
            return out

        with nn.intercept_methods(interceptor):
            res = self.module.apply(self.variables, x, mutable=mutable, **self._linen_kw(train))
        if mutable:
            out, upd = res
            stats = _flax_flat({"batch_stats": upd["batch_stats"]})
            return out, stats, calls
        return res, None, calls

    def value_and_grads(self, x, cot, *, train: bool):
        """Output, gradient w.r.t. ``x`` and flat parameter gradients of ``sum(out·cot)``."""
        import jax
        import jax.numpy as jnp

        cot = jnp.asarray(cot)
        if self.nnx:
            from flax import nnx

            model = self._nnx_model(train)

            def f(model, x):
                out = model(x, **self._kw(train))
                return jnp.sum(out * cot), out

            (_, out), (gp, gx) = nnx.value_and_grad(f, argnums=(0, 1), has_aux=True)(model, x)
            flat = {}
            for path, v in nnx.to_flat_state(gp):
                flat[("params", tuple(path))] = np.asarray(v.get_value() if hasattr(v, "get_value") else v)
            return out, gx, flat
        mutable = ["batch_stats"] if (train and "batch_stats" in self.variables) else False
        rest = {k: v for k, v in self.variables.items() if k != "params"}

        import flax.linen as nn

        def no_dropout(next_fun, args, kwargs, context):
            if train and isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
                return args[0]
            return next_fun(*args, **kwargs)

        def f(params, x):
            with nn.intercept_methods(no_dropout):
                res = self.module.apply({"params": params, **rest}, x, mutable=mutable, **self._linen_kw(train))
            out = res[0] if mutable else res
            return jnp.sum(out * cot), out

        (_, out), (gp, gx) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(self.variables["params"], x)
        return out, gx, _flax_flat({"params": gp})


class _nnx_capture:
    """Record every NNX submodule's first call (input, output) while the context is active."""

    def __init__(self, model, calls):
        self.paths = {id(m): p for p, m in _nnx_modules(model).items() if p}
        self.mods = {id(m): m for p, m in _nnx_modules(model).items() if p}
        self.calls = calls
        self.saved = []

    def __enter__(self):
        classes = {type(m) for m in self.mods.values()}
        active: set = set()
        for cls in classes:
            orig = cls.__call__
            had = "__call__" in cls.__dict__

            def wrapper(mod, *args, __orig=orig, **kwargs):
                key = id(mod)
                if key in active:
                    return __orig(mod, *args, **kwargs)
                active.add(key)
                try:
                    out = __orig(mod, *args, **kwargs)
                finally:
                    active.discard(key)
                if key in self.paths and not any(c.name == self.paths[key] for c in self.calls):
                    self.calls.append(_Call(self.paths[key], mod, _first_array(args), out, len(self.calls)))
                return out

            self.saved.append((cls, had, orig))
            cls.__call__ = wrapper
        return self

    def __exit__(self, *exc):
        for cls, had, orig in reversed(self.saved):
            if had:
                cls.__call__ = orig
            else:
                del cls.__call__
        return False


# ------------------------------------------------------------------------------- diagnosis


def _pads(size, kernel, stride, dilation, padding):
    """Effective (low, high) padding of one spatial dimension for a flax padding spec."""
    eff = (kernel - 1) * dilation + 1
    if isinstance(padding, str):
        p = padding.upper()
        if p == "VALID":
            return (0, 0)
        if p == "SAME":
            out = -(-size // stride)
            total = max((out - 1) * stride + eff - size, 0)
            return (total // 2, total - total // 2)
        return None
    if isinstance(padding, int):
        return (padding, padding)
    pair = tuple(padding)
    return (pair[0], pair[1]) if len(pair) == 2 else (pair[0], pair[0])


def _seq(v, n):
    if v is None:
        return (1,) * n
    if isinstance(v, int):
        return (v,) * n
    return tuple(v)


def _settings_diff(torch_mod, flax_mod, torch_input) -> list[str]:
    """What differs between a torch layer's settings and its flax twin's (readable lines)."""
    import torch.nn as tnn

    notes: list[str] = []
    if flax_mod is None:
        return notes
    try:
        import flax.linen as nn
        from flax import nnx

        flax_bn = isinstance(flax_mod, (nn.BatchNorm, nnx.BatchNorm))
    except ImportError:  # pragma: no cover
        flax_bn = False
    if isinstance(torch_mod, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)) and hasattr(flax_mod, "padding"):
        nsp = len(torch_mod.kernel_size)
        spatial = tuple(torch_input.shape[2:]) if torch_input is not None else (None,) * nsp
        t_stride = torch_mod.stride
        f_stride = _seq(getattr(flax_mod, "strides", 1), nsp)
        if tuple(t_stride) != tuple(f_stride):
            notes.append(f"stride: torch {tuple(t_stride)}, flax {tuple(f_stride)}")
        f_dil = _seq(getattr(flax_mod, "kernel_dilation", 1), nsp)
        if tuple(torch_mod.dilation) != tuple(f_dil):
            notes.append(f"dilation: torch {tuple(torch_mod.dilation)}, flax {tuple(f_dil)}")
        groups = getattr(flax_mod, "feature_group_count", 1)
        if torch_mod.groups != groups:
            notes.append(f"groups: torch {torch_mod.groups}, flax feature_group_count={groups}")
        if torch_mod.padding_mode != "zeros":
            notes.append(f"torch padding_mode={torch_mod.padding_mode!r} (flax Conv pads with zeros)")
        fpad = flax_mod.padding
        for d in range(nsp):
            size = spatial[d]
            if size is None:
                continue
            tp = _pads(size, torch_mod.kernel_size[d], t_stride[d], torch_mod.dilation[d],
                       torch_mod.padding if isinstance(torch_mod.padding, str) else torch_mod.padding[d])
            spec = fpad if isinstance(fpad, (str, int)) else (fpad[d] if len(fpad) == nsp else fpad)
            fp = _pads(size, torch_mod.kernel_size[d], f_stride[d], f_dil[d], spec)
            if fp is not None and tp != fp:
                notes.append(
                    f"padding of spatial dim {d} (size {size}): torch pads {tp} (padding={torch_mod.padding!r}), "
                    f"flax pads {fp} (padding={fpad!r}, stride {f_stride[d]})"
                )
    if isinstance(torch_mod, (tnn.modules.batchnorm._BatchNorm, tnn.LayerNorm, tnn.GroupNorm)):
        feps = getattr(flax_mod, "epsilon", None)
        if feps is not None and not np.isclose(feps, torch_mod.eps, rtol=1e-6, atol=0):
            notes.append(f"eps: torch {torch_mod.eps:g}, flax epsilon={feps:g}")
    if isinstance(torch_mod, tnn.modules.batchnorm._BatchNorm) and flax_bn and torch_mod.momentum is not None:
        fm = flax_mod.momentum
        want = 1.0 - torch_mod.momentum
        if not np.isclose(fm, want):
            notes.append(
                f"momentum: torch momentum={torch_mod.momentum:g} keeps (1-{torch_mod.momentum:g})·running, flax "
                f"momentum={fm:g} keeps {fm:g}·running — flax's momentum should be 1 - {torch_mod.momentum:g} = {want:g}"
            )
    return notes


def _max_err(t: np.ndarray, f: np.ndarray) -> float:
    if t.shape != f.shape:
        return float("inf")
    d = np.abs(t.astype(np.float64) - f.astype(np.float64))
    return float(np.nanmax(d)) if d.size else 0.0


def _differs(t, f, atol, rtol) -> bool:
    if t is None or f is None:
        return False
    t, f = np.asarray(t, np.float64), np.asarray(f, np.float64)
    if t.shape != f.shape:
        return True
    return bool(np.any(np.abs(t - f) > atol + rtol * np.abs(f)))


def _chw_to_hwc(arr, chw):
    """``[N, C·H·W]`` features in (C, H, W) order as (H, W, C) order (``flatten=`` of that layer)."""
    if arr is None or arr.ndim != 2 or arr.shape[1] != int(np.prod(chw)):
        return arr
    n = arr.shape[0]
    return np.ascontiguousarray(arr.reshape(n, *chw).transpose(0, *range(2, len(chw) + 1), 1).reshape(n, -1))


def _convention_hint(prev_out, t_in_raw, f_in, kind) -> str:
    """Which usual convention switch of the functional op between two layers turns torch's result
    into the port's: GELU exact vs tanh, softmax axis, average pooling's ``count_include_pad`` /
    ``ceil_mode``. ``prev_out``: the torch layer output before the op (torch layout); ``t_in_raw``:
    torch's input of the next layer; ``f_in``: the port's (flax layout). Empty when none fits."""
    import torch
    import torch.nn.functional as F

    p = prev_out.detach().to(torch.float64)
    t_ref = np.asarray(to_numpy(t_in_raw), np.float64)
    f = np.asarray(to_numpy(f_in), np.float64)

    def close(a, b):
        a = np.asarray(a, np.float64)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6 * (1 + float(np.abs(b).max(initial=0)))))

    def port_form(z):
        return _act_to_flax(z, kind)

    def err(z):
        return float(np.abs(np.asarray(port_form(z), np.float64) - f).max())

    cands = []  # (torch's op, the port's op, message)
    for approx, other in (("none", "tanh"), ("tanh", "none")):
        cands.append((lambda z, a=approx: F.gelu(z, approximate=a), lambda z, a=other: F.gelu(z, approximate=a),
                      f"GELU: torch uses gelu(approximate={approx!r}), the port gelu(approximate={other!r})"
                      + (" — use jax.nn.gelu(x, approximate=False) (flax's nn.gelu defaults to the tanh form)"
                         if approx == "none" else " — use jax.nn.gelu(x, approximate=True)")))
    for dt in range(p.ndim):
        for df in range(p.ndim):
            if dt != df:
                cands.append((lambda z, d=dt: F.softmax(z, d), lambda z, d=df: F.softmax(z, d),
                              f"softmax axis: torch normalises over dim {dt} (torch layout), the port over torch's dim {df}"))
    if p.ndim == 4:
        for k in (2, 3):
            for st in (1, 2):
                for pad in range(0, k // 2 + 1):
                    for cip in (True, False):
                        for ceil in (False, True):
                            def t_op(z, k=k, st=st, pad=pad, cip=cip, ceil=ceil):
                                return F.avg_pool2d(z, k, st, pad, ceil_mode=ceil, count_include_pad=cip)
                            for cip2, ceil2 in ((not cip, ceil), (cip, not ceil), (not cip, not ceil)):
                                def f_op(z, k=k, st=st, pad=pad, cip=cip2, ceil=ceil2):
                                    return F.avg_pool2d(z, k, st, pad, ceil_mode=ceil, count_include_pad=cip)
                                cands.append((t_op, f_op, (
                                    f"average pooling ({k}x{k}, stride {st}, padding {pad}): torch count_include_pad={cip}, "
                                    f"ceil_mode={ceil}; the port behaves as count_include_pad={cip2}, ceil_mode={ceil2} "
                                    f"(flax's nn.avg_pool: count_include_pad={cip}, and padding for ceil_mode)")))
    for t_op, f_op, message in cands:
        try:
            if not close(t_op(p).numpy(), t_ref):
                continue
            alt = f_op(p)
        except (RuntimeError, ValueError, IndexError):
            continue
        if port_form(alt.numpy()).shape == f.shape and close(port_form(alt.numpy()), f):
            return f"{message}; with that switch torch's result agrees with the port to {err(alt.numpy()):.3g}"
    return ""


def _flatten_hint(call: _Call, torch_calls, t_in, f_in) -> str:
    if t_in.ndim != 2:
        return ""
    n, feat = t_in.shape
    for prev in reversed([c for c in torch_calls if c.order < call.order and c.output is not None]):
        o = prev.output
        if o.ndim == 4 and int(np.prod(o.shape[1:])) == feat:
            c, h, w = o.shape[1:]
            permuted = t_in.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, feat)
            if np.allclose(permuted, f_in, rtol=1e-4, atol=1e-5):
                return (
                    f"flatten order: flax flattened NHWC (H, W, C) where torch flattened NCHW (C, H, W) before "
                    f"{call.name!r} — convert with flatten={{{call.name!r}: ({c}, {h}, {w})}}, or flatten in NCHW order in the port"
                )
    return ""


def localise(torch_module, flax_module, x_nhwc, *, variables=None, weight_map=None, images=True,
             train=False, train_arg="train", atol=1e-5, rtol=1e-4, torch_input=None) -> str:
    """Where the two modules' activations on one input first part (a readable paragraph).

    Runs both once with capture; walks the torch submodules in the order they are called (leaves
    only: modules with no submodules) that have a flax twin (by the same naming rule as
    :func:`map_weights`); reports the first whose input or output differs beyond ``atol +
    rtol·|flax|``, with the size of the difference and the settings that differ; if every layer
    agrees, the code after the last one. ``atol=None``: each activation is compared with the torch
    module's float64 run within the calibrated tolerance (:func:`parity.compare.calibrated_bound`).
    Layers that are identities in the compared mode (``Identity``, dropout: off in both modes)
    are skipped.
    """
    import torch
    import torch.nn as tnn

    from parity.compare import calibrated_bound, input_scale

    fl = _Flax(flax_module, variables, train_arg)
    x_t = torch_input if torch_input is not None else (images_to_torch(x_nhwc) if images else to_torch(np.array(x_nhwc)))
    t_out, t_calls = _torch_forward(copy.deepcopy(torch_module), x_t, train=train, capture=True)
    oracle: dict = {}
    if atol is None:
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            o_out, o_calls = _torch_forward(copy.deepcopy(torch_module).double(), x_t.double(), train=train, capture=True)
        finally:
            torch.set_default_dtype(old)
        oracle = {c.name: c for c in o_calls}
        oracle[None] = _Call(None, None, None, o_out, -1)
    scale = input_scale(np.asarray(x_nhwc)) if atol is None else 0.0

    def differs(t, f, o):
        if atol is not None or o is None:
            return _differs(t, f, 0.0 if atol is None else atol, 0.0 if rtol is None else rtol)
        if t is None or f is None:
            return False
        if np.shape(t) != np.shape(f):
            return True
        o = np.asarray(o, np.float64)
        return bool(np.any(np.abs(np.asarray(f, np.float64) - o) > calibrated_bound(t, o, scale)))

    f_out, _, f_calls = fl.forward(to_jax(x_nhwc), train=train, capture=True)
    names = {}
    if weight_map is not None:
        names = {e.torch_name: _canon(e.flax_path) for e in weight_map.entries}
    f_by = {_canon(c.name): c for c in f_calls}
    flattens = {e.torch_name: e.flatten for e in weight_map.entries if e.flatten} if weight_map is not None else {}
    leaf_names = {n for n, m in torch_module.named_modules() if n and not list(m.children())}
    rows = []
    last_ok = None
    mode = "training mode" if train else "eval mode"
    for call in t_calls:
        if call.name not in leaf_names:
            continue
        twin = f_by.get(names.get(call.name, _canon(call.name)))
        if twin is None or call.output is None or isinstance(call.module, (tnn.Identity, tnn.modules.dropout._DropoutNd)):
            continue
        kind = _torch_kind(call.module)
        t_in = _act_to_flax(call.input, kind) if call.input is not None else None
        f_in = to_numpy(twin.input) if twin.input is not None else None
        t_o, f_o = _act_to_flax(call.output, kind), to_numpy(twin.output)
        o_call = oracle.get(call.name)
        o_in = _act_to_flax(o_call.input, kind) if o_call is not None and o_call.input is not None else None
        o_o = _act_to_flax(o_call.output, kind) if o_call is not None else None
        chw = flattens.get(call.name)
        if chw is not None:  # flatten= declared: the port sees these features in (H, W, C) order, as converted
            t_in, o_in = _chw_to_hwc(t_in, chw), _chw_to_hwc(o_in, chw)
        in_bad = differs(t_in, f_in, o_in)
        out_bad = differs(t_o, f_o, o_o)
        label = f"{call.name!r} ({type(call.module).__name__}; flax {_path_str(twin.name)})"
        if in_bad:
            err = _max_err(t_in, f_in)
            where = f"after {last_ok!r}" if last_ok else "before it (in the input handling)"
            lines = [
                f"first difference at the input of {label} in {mode}: max abs err {err:.3g} "
                f"(shapes torch {t_in.shape} vs flax {f_in.shape}, NHWC); every layer before it agrees — "
                f"the code between the layers differs: {where} (a functional op: flatten/reshape order, "
                f"softmax/reduction axis, pooling, padding, activation)"
            ]
            hint = _flatten_hint(call, t_calls, to_numpy(call.input), f_in) if t_in.shape == f_in.shape else ""
            prev = next((c for c in t_calls if c.name == last_ok), None)
            if not hint and prev is not None and prev.output is not None:
                hint = _convention_hint(prev.output, call.input, f_in, kind)
            if hint:
                lines.append(hint)
            return "\n    ".join(lines)
        if out_bad:
            err = _max_err(t_o, f_o)
            lines = [
                f"first layer that differs: {label} in {mode}: its input agrees, its output differs by max abs err "
                f"{err:.3g}" + (f" (shapes torch {t_o.shape} vs flax {f_o.shape}, NHWC)" if t_o.shape != f_o.shape else "")
            ]
            notes = _settings_diff(call.module, twin.module, call.input)
            lines += notes or ["(its settings look alike: check the converted weights' layout, e.g. a transposed kernel)"]
            return "\n    ".join(lines)
        rows.append(call.name)
        last_ok = call.name
    t_final = _act_to_flax(t_out, None) if images else to_numpy(t_out)
    o_final = None
    if None in oracle:
        o_final = _act_to_flax(oracle[None].output, None) if images else to_numpy(oracle[None].output)
    if differs(t_final, to_numpy(f_out), o_final):
        err = _max_err(t_final, to_numpy(f_out))
        if last_ok is None:
            return f"the outputs differ by max abs err {err:.3g} in {mode}, and no torch layer has a flax twin to compare"
        return (
            f"every compared layer agrees in {mode} ({len(rows)}, the last {last_ok!r}), the outputs differ by max abs "
            f"err {err:.3g}: the code after {last_ok!r} differs (a functional op: softmax/reduction axis, reshape, activation)"
        )
    tol = "the calibrated tolerance" if atol is None else f"atol={atol:g}, rtol={rtol:g}"
    return f"no layer differs in {mode} on this input beyond {tol}"


def _stats_diagnosis(torch_module, flax_module, wm, x_nhwc, variables, train_arg, stats_tol, images) -> str:
    """Name the BatchNorm layers whose running statistics differ after one training step, and why.

    ``stats_tol=None`` (a calibrated check, which has already found the difference): a statistic
    is named when it differs by more than 64 float32 ulps of its largest value — running averages
    of activations carry a few ulps of rounding, a convention difference ~1e-2 relative."""
    import torch.nn as tnn

    def tol_of(t):
        if stats_tol is not None:
            return stats_tol
        return (64 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(t), initial=0.0)), 0.0)

    t_mod = copy.deepcopy(torch_module)
    x_t = images_to_torch(x_nhwc) if images else to_torch(np.array(x_nhwc))
    _, t_calls = _torch_forward(t_mod, x_t, train=True, capture=True)
    fl = _Flax(flax_module, variables, train_arg)
    _, f_stats, f_calls = fl.forward(to_jax(x_nhwc), train=True, capture=True)
    f_mods = {_canon(c.name): c.module for c in f_calls}
    state = t_mod.state_dict()
    before = torch_module.state_dict()
    lines = []
    for e in wm.entries:
        if e.kind != "batchnorm":
            continue
        mod = dict(t_mod.named_modules())[e.torch_name]
        for leaf in ("running_mean", "running_var"):
            key = f"{e.torch_name}.{leaf}"
            if leaf not in e.leaves or f_stats is None:
                continue
            coll, path, t_new = wm.leaf_to_flax(key, state[key])
            f_new = f_stats.get((coll, path))
            if f_new is None or not _differs(t_new, f_new, *tol_of(t_new)):
                continue
            line = f"BatchNorm {e.torch_name!r} ({type(mod).__name__}; flax {_path_str(e.flax_path)}): {leaf} after one training step differs by max abs err {_max_err(t_new, f_new):.3g}"
            notes = _settings_diff(mod, f_mods.get(_canon(e.flax_path)), None)
            if leaf == "running_var" and not notes:
                call = next((c for c in t_calls if c.name == e.torch_name), None)
                if call is not None and isinstance(mod, tnn.modules.batchnorm._BatchNorm):
                    n = int(np.prod(call.input.shape)) // call.input.shape[1]
                    m = mod.momentum
                    old = to_numpy(before[key]).astype(np.float64)
                    u = (to_numpy(state[key]).astype(np.float64) - (1 - m) * old) / m
                    biased = (1 - m) * old + m * u * (n - 1) / max(n, 1)
                    if not _differs(biased, f_new, *tol_of(biased)):
                        notes.append(
                            "the flax running var holds the biased batch variance (flax BatchNorm's convention; torch "
                            f"keeps the unbiased one, ×{n}/{n - 1}): not a port bug — pass accept=['{BIASED_RUNNING_VAR}'] "
                            "to compare in flax's convention"
                        )
            lines.append("\n      ".join([line, *notes]))
    return "\n    ".join(lines)


# ------------------------------------------------------------------------------- the check


def input_batches(shape, *, scales=(1e-2, 1.0, 10.0), dtype=np.float32):
    """A strategy of ``shape`` arrays (NHWC for images): standard normal values from a drawn seed,
    times a drawn scale from ``scales`` (small ones make a LayerNorm's ``eps`` matter).

    Values have spread on purpose: on a constant input a BatchNorm's batch variance is 0, where
    both frameworks divide rounding noise by ``sqrt(eps)`` and no tolerance separates a bug from
    that amplification. Shrinks towards seed 0 and the first scale.
    """
    from parity.strategies import scaled_normals

    return scaled_normals(shape, scales=scales, dtype=dtype)


def _cotangent(shape) -> np.ndarray:
    """A fixed, non-constant output weighting for the gradient check (a sum of a softmax would
    have zero gradient)."""
    return np.random.default_rng(1234).standard_normal(shape).astype(np.float32)


def module_check(
    name: str,
    torch_module,
    flax_module,
    *,
    variables=None,
    inputs,
    images: bool = True,
    train_arg: str | None = "train",
    train: bool = True,
    grads: bool = True,
    names: Mapping[str, Any] | None = None,
    flatten: Mapping[str, tuple] | None = None,
    accept: Iterable[str] = (),
    atol: float | None = None,
    rtol: float | None = None,
    reason: str = "",
    stats_tolerance: tuple | None = None,
    group: str = "modules",
    allow_nan: str = "",
) -> Trick:
    """A :class:`~parity.registry.Trick` comparing ``torch_module`` with ``flax_module``.

    The torch weights are converted once (:func:`map_weights` + :func:`torch_to_flax`; the user's
    modules are not modified: NNX modules are cloned). Each drawn input ``x`` (NHWC when
    ``images``; torch gets NCHW) then compares:

    * ``eval/output``: both in eval mode (``train_arg=False``; NNX ``.eval()``);
    * with ``train``: ``train/output``, and with ``grads`` the gradients of ``sum(out·c)`` for a
      fixed random ``c``: ``train/grad_input`` and ``train/grad/<torch parameter>`` (in flax
      layout); ``train/stats/<bn>.running_mean|var`` after the training-mode step.

    A disagreement's message names the first layer that differs (:func:`localise`) or the
    BatchNorm whose statistics differ, and why.

    Args:
        variables: the linen module's variables (their structure: values are replaced by the
            converted torch weights); ``None`` for NNX.
        inputs: a hypothesis strategy of NumPy inputs (or one array).
        train_arg: the keyword that switches the flax module into training mode (``None``: it
            has none; then the NNX ``train()``/``eval()`` switch alone decides).
        names, flatten, accept: see :func:`map_weights`; ``accept`` may also hold
            ``"biased_running_var"`` (compare running variances in flax BatchNorm's convention).
        atol, rtol, reason: an explicit tolerance and why (float32 convolutions in different
            orders...). Neither given (the default): calibrated per case and per compared
            quantity (each output, input gradient, parameter gradient, running statistic) — the
            torch module also runs in float64 as the oracle, and the flax side must stay within
            :data:`parity.compare.FACTOR` × torch's own float32 error of it plus
            :data:`parity.compare.ULPS` ulps (:func:`parity.compare.calibrated_bound`). Torch's
            float32 error is measured with torch's two-pass variance *and* with the one-pass
            ``E[x²] - E[x]²`` that flax's normalization layers use by default
            (``use_fast_variance=True``), the larger of the two: both are correct float32
            evaluations, the second loses more digits when a channel's mean is large against
            its spread.
        stats_tolerance: ``(atol, rtol)`` for the running statistics with an explicit tolerance:
            they are averages of the activations, so rounding leaves them far closer than
            gradients; ``None`` (default): (1e-5, 1e-5) with an explicit ``atol``, calibrated
            otherwise.
        allow_nan: the reason NaN / infinite outputs are expected (by default they fail).
    """
    import torch
    from hypothesis import strategies as st

    from parity.functions import _tolerance

    atol, rtol = _tolerance(atol, rtol, reason)
    calibrated = atol is None
    if stats_tolerance is None:
        stats_tolerance = None if calibrated else (1e-5, 1e-5)
    elif calibrated:
        raise ValueError("stats_tolerance needs an explicit atol too (or leave both out: calibrated)")
    accept = tuple(accept)
    biased = BIASED_RUNNING_VAR in accept
    flax_module_local = flax_module
    if _is_nnx(flax_module):
        from flax import nnx

        flax_module_local = nnx.clone(flax_module)
        target = flax_module_local
    else:
        target = variables
    wm = map_weights(torch_module, target, names=names, flatten=flatten,
                     accept=[a for a in accept if a != BIASED_RUNNING_VAR])
    converted = torch_to_flax(torch_module, target, weight_map=wm)
    fl = _Flax(flax_module_local, None if _is_nnx(flax_module) else converted, train_arg)
    strategy = inputs if isinstance(inputs, st.SearchStrategy) else st.just(np.asarray(inputs))
    tmod = torch_module

    def to_t(x):
        return images_to_torch(x) if images else to_torch(np.array(x))

    def out_to_flax(out):
        arr = to_numpy(out)
        return _act_to_flax(arr, None) if images else arr

    def run_torch(case, dtype=None, fast_variance=None):
        x = case["x"]
        dtype = dtype or torch.float32

        def fresh():
            m = copy.deepcopy(tmod).to(dtype)
            if fast_variance is not None:
                _use_fast_variance(m, fast_variance)
            return m

        def inp():
            return to_t(x).to(dtype)

        res = {"eval/output": out_to_flax(_torch_forward(fresh(), inp(), train=False, capture=False)[0])}
        if not train:
            return res
        m = fresh()
        m.train(True)
        _dropout_off(m)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        xt = inp().requires_grad_(grads)
        bn_inputs = {}
        def record_shape(mod, args, name):
            bn_inputs.setdefault(name, tuple(args[0].shape))  # returns None: the input is left as it is

        hooks = [
            mod.register_forward_pre_hook(lambda mod, args, name=n: record_shape(mod, args, name))
            for n, mod in m.named_modules() if _torch_kind(mod) == "batchnorm"
        ]
        try:
            out = m(xt)
        finally:
            for h in hooks:
                h.remove()
        res["train/output"] = out_to_flax(out)
        if grads:
            cot = _cotangent(res["train/output"].shape)
            cot_t = (to_t(cot) if images and cot.ndim == 4 else to_torch(cot)).to(dtype)
            params = dict(m.named_parameters())
            g = torch.autograd.grad((out * cot_t).sum(), [xt, *params.values()], allow_unused=True)
            gx = g[0]
            res["train/grad_input"] = images_from_torch(gx) if images else to_numpy(gx)
            for (pname, p), gp in zip(params.items(), g[1:]):
                value = torch.zeros_like(p) if gp is None else gp
                res[f"train/grad/{pname}"] = wm.leaf_to_flax(pname, value)[2]
        state = m.state_dict()
        for e in wm.entries:
            if e.kind != "batchnorm":
                continue
            mod = dict(m.named_modules())[e.torch_name]
            for leaf in ("running_mean", "running_var"):
                if leaf not in e.leaves:
                    continue
                key = f"{e.torch_name}.{leaf}"
                new = to_numpy(state[key]).astype(np.float64)
                if leaf == "running_var" and biased and e.torch_name in bn_inputs:
                    shape = bn_inputs[e.torch_name]
                    n = int(np.prod(shape)) // shape[1]
                    mom = mod.momentum
                    old = to_numpy(before[key]).astype(np.float64)
                    new = (1 - mom) * old + (new - (1 - mom) * old) * (n - 1) / max(n, 1)
                res[f"train/stats/{key}"] = wm.leaf_to_flax(key, new.astype(to_numpy(state[key]).dtype))[2]
        return res

    def run_torch32(case):
        return run_torch(case)

    def oracle(case):
        """Torch in float64 — and, per output, the worse of torch's two float32 evaluations
        (two-pass and one-pass variance) as the float32 side the tolerance is calibrated from."""
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return run_torch(case, torch.float64)
        finally:
            torch.set_default_dtype(old)

    def run_jax(case):
        x = to_jax(np.asarray(case["x"]))
        out, _, _ = fl.forward(x, train=False)
        res = {"eval/output": to_numpy(out)}
        if not train:
            return res
        out, stats, _ = fl.forward(x, train=True)
        res["train/output"] = to_numpy(out)
        if grads:
            cot = _cotangent(res["train/output"].shape)
            _, gx, gp = fl.value_and_grads(x, cot, train=True)
            res["train/grad_input"] = to_numpy(gx)
            for pname in wm.param_names:
                res[f"train/grad/{pname}"] = gp[wm.flax_key(pname)]
        for e in wm.entries:
            if e.kind != "batchnorm" or stats is None:
                continue
            for leaf in ("running_mean", "running_var"):
                if leaf in e.leaves:
                    res[f"train/stats/{e.torch_name}.{leaf}"] = stats[wm.flax_key(f"{e.torch_name}.{leaf}")]
        return res

    def explain(case):
        x = np.asarray(case["x"])
        text = localise(tmod, flax_module_local, x, variables=fl.variables, weight_map=wm, images=images,
                        train=False, train_arg=train_arg, atol=atol, rtol=rtol)
        if text.startswith("no layer differs") and train:
            text = localise(tmod, flax_module_local, x, variables=fl.variables, weight_map=wm, images=images,
                            train=True, train_arg=train_arg, atol=atol, rtol=rtol)
            if text.startswith("no layer differs"):
                stats = _stats_diagnosis(tmod, flax_module_local, wm, x, fl.variables, train_arg, stats_tolerance, images)
                text = stats or (text + " (forward outputs agree: the gradients differ)")
        warn = f"\n    accepted: {'; '.join(wm.warnings)}" if wm.warnings else ""
        return text + warn

    return Trick(
        name=name,
        group=group,
        cases=lambda: strategy.map(lambda x: {"x": x}),
        run_torch=run_torch32,
        run_jax=run_jax,
        atol=atol,
        rtol=rtol,
        reason=reason or ("calibrated from the torch module in float64" if calibrated else ""),
        explain=explain,
        tolerances={} if calibrated else {"train/stats/": _tolerance(*stats_tolerance, reason)},
        oracle=oracle if calibrated else None,
        references=tuple(lambda case, sign=sign: run_torch(case, fast_variance=sign) for sign in (1, 0, -1))
        if calibrated and _use_fast_variance(copy.deepcopy(tmod), 1) else (),
        allow_nan=allow_nan,
    )


def _dropout_off(module) -> None:
    """Training mode with every dropout layer off (identity): the two frameworks' random masks
    cannot agree, so the check compares the rest of training mode (BatchNorm batch statistics,
    gradients) with dropout as in eval mode — the same on both sides (:class:`_Flax` does the same)."""
    import torch.nn as tnn

    for sub in module.modules():
        if isinstance(sub, tnn.modules.dropout._DropoutNd):
            sub.train(False)


#: the one-pass variance's rounding error, in float32 ulps of ``E[x²]``: the error of ``E[x²] -
#: E[x]²`` is a few ulps of ``E[x²]`` (both means carry ~1 ulp; their difference keeps it)
FAST_VARIANCE_ULPS = 2.0


class _FastVarianceNorm:
    """A torch BatchNorm / LayerNorm forward computing the variance in one pass, ``E[x²] - E[x]²``
    (clamped at 0), as flax's normalization layers do by default (``use_fast_variance=True``),
    shifted by ``sign·FAST_VARIANCE_ULPS`` float32 ulps of ``E[x²]``. Used only to measure how
    far a correct float32 evaluation may land from the oracle (the calibrated tolerance): one
    evaluation of that rounding error is a random draw, often far below its size, so the check
    measures it as written (sign 0) and at both ends of its bound (signs ±1)."""

    def __init__(self, mod, sign):
        self.mod, self.sign = mod, sign

    def _var(self, x, dims, keepdim):
        import torch

        # E[x²] - E[x]² as written: its forward *and* its backward round like flax's
        sq = (x * x).mean(dims, keepdim=keepdim)
        mean = x.mean(dims, keepdim=keepdim)
        shift = self.sign * FAST_VARIANCE_ULPS * float(np.finfo(np.float32).eps) * sq.detach()
        return torch.clamp(sq - mean * mean + shift, min=0)

    def __call__(self, x):
        import torch
        import torch.nn as tnn

        mod = self.mod
        if isinstance(mod, tnn.LayerNorm):
            dims = tuple(range(x.ndim - len(mod.normalized_shape), x.ndim))
            mean = x.mean(dims, keepdim=True)
            var = self._var(x, dims, True)
            y = (x - mean) * torch.rsqrt(var + mod.eps)
            if getattr(mod, "weight", None) is not None:
                y = y * mod.weight
            if getattr(mod, "bias", None) is not None:
                y = y + mod.bias
            return y
        use_batch = mod.training or mod.running_mean is None
        shape = [1, -1] + [1] * (x.ndim - 2)
        if not use_batch:
            return mod._orig_forward(x)
        dims = (0,) + tuple(range(2, x.ndim))
        mean = x.mean(dims)
        var = self._var(x, dims, False)
        if mod.training and mod.track_running_stats and mod.running_mean is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                m = mod.momentum
                mod.running_mean.mul_(1 - m).add_(m * mean.detach())
                mod.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
                mod.num_batches_tracked.add_(1)
        y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + mod.eps)
        if mod.affine:
            y = y * mod.weight.reshape(shape) + mod.bias.reshape(shape)
        return y


def _use_fast_variance(module, sign) -> bool:
    """Give every BatchNorm / LayerNorm of ``module`` a :class:`_FastVarianceNorm` forward; False
    when it has none."""
    import torch.nn as tnn

    found = False
    for sub in module.modules():
        if isinstance(sub, (tnn.modules.batchnorm._BatchNorm, tnn.LayerNorm)):
            sub._orig_forward = sub.forward
            sub.forward = _FastVarianceNorm(sub, sign)
            found = True
    return found


def check_module(torch_module, flax_module, *, examples: int | None = None, name: str | None = None, **kwargs):
    """:func:`module_check` run at once (see :func:`parity.functions.run_check`): returns the report,
    or raises :class:`~parity.registry.ParityError` with the localised diagnosis and the minimal
    input. ``examples`` overrides the active hypothesis profile's number of examples."""
    from parity.functions import run_check

    name = name or f"{type(torch_module).__name__} vs {type(flax_module).__name__}"
    return run_check(module_check(name, torch_module, flax_module, **kwargs), examples=examples)

