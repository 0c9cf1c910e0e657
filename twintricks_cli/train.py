"""The ``twintricks train`` subcommand: one recipe, in PyTorch or in JAX.

``twintricks train --backend torch|jax`` loads the data (:mod:`twintricks.datasets`), builds the
backend's :class:`Trainer` (:mod:`torch_impl.train` / :mod:`jax_impl.train`) and runs the shared
epoch loop (:func:`twintricks.recipe.fit`), writing ``config.json``, ``metrics.jsonl``,
``checkpoint.ckpt`` (after every epoch, atomically), ``summary.json`` and ``curves.png`` to
``--out``. A ``--teacher`` checkpoint written by either backend is converted on load
(:func:`parity.convert.torch_state_dict_to_flax` / :func:`parity.convert.flax_to_torch_state_dict`).

The options are generated from :data:`twintricks.recipe.OPTIONS` (defaults, help, checks and
flags declared once, the tricks' in :data:`twintricks.tricks.TRICKS`); ``--threads`` is the one
option of the command line alone. Before the data loads, ``--out`` is checked (a folder that can
be written), the thread count is applied (a resumed run reuses the recorded one) and ``--device``
is resolved by the backend; a diverging loss ends the run with a non-zero exit.

Backends are imported only once the arguments are parsed, after ``--threads`` has been applied
(XLA reads its thread flags when jax is first imported).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

from twintricks.threads import auto_threads, set_threads

__all__ = ["add_parser", "run", "config_from_args", "load_teacher"]


def _add_option(group, option) -> None:
    """One :class:`twintricks.tricks.Option` as an ``argparse`` argument (dest = the config field)."""
    shown = option.default if option.nargs is None or option.default is None else " ".join(map(str, option.default))
    note = "" if option.default is None or option.type is bool else f" (default {shown})"
    kw = dict(dest=option.name, default=option.default, help=option.help + note)
    if option.type is bool:
        kw["action"] = "store_false" if option.default else "store_true"
    else:
        kw.update(type=option.type, metavar=option.metavar, choices=option.choices, nargs=option.nargs)
        if option.nargs is not None and option.default is not None:
            kw["default"] = list(option.default)
    group.add_argument(option.cli_flag, **kw)


def add_parser(sub) -> None:
    """Add ``train`` to the ``twintricks`` subparsers: one option per
    :data:`twintricks.recipe.OPTIONS` entry (defaults and help from there), plus ``--threads``."""
    from twintricks.recipe import OPTION_GROUPS, TRICKS, TRICKS_GROUP
    from twintricks.tricks import STAGES

    p = sub.add_parser(
        "train",
        help="train an image classifier with any combination of the tricks, in torch or jax",
        description="Train with the twintricks recipe. Defaults: scikit-learn digits (embedded, "
        "32x32 RGB), the small fastnet, SGD+Nesterov, cosine schedule, 6 epochs.",
    )
    steps = [" / ".join(t.title for t in TRICKS if t.stage == stage) or "normalise" * (stage == "normalise")
             for stage in STAGES]
    order = "applied in this order: " + " → ".join(step for step in steps if step)
    for title, options in OPTION_GROUPS.items():
        g = p.add_argument_group(title, order if options is OPTION_GROUPS[TRICKS_GROUP] else None)
        for option in options:
            _add_option(g, option)
        if title == "run":
            g.add_argument("--threads", type=int, default=None, metavar="N",
                           help="CPU threads for the backend (default: 1 when the machine is busy — load average >= "
                           "cores — where 2 threads were measured 4x slower than 1; else the backend's default)")
        if title == "scale-out":
            g.description = ("torch: start one process per device with torchrun --nproc_per_node=N (several "
                             "machines: --nnodes and --rdzv-endpoint); jax: every device by default, several machines "
                             "with the three options below or JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID")
            g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                           help="jax, several machines: address of process 0 (jax.distributed)")
            g.add_argument("--num-processes", type=int, default=None, metavar="N", help="jax, several machines: processes")
            g.add_argument("--process-id", type=int, default=None, metavar="I", help="jax, several machines: this one's index")
    p.set_defaults(func=run)


def config_from_args(args):
    """A :class:`~twintricks.recipe.TrainConfig` from parsed arguments (errors → SystemExit)."""
    from twintricks.recipe import OPTIONS, TrainConfig

    fields = {o.name: getattr(args, o.name) for o in OPTIONS}
    fields["out"] = args.out or os.path.join("runs", f"{args.backend}-{args.dataset}-{args.model}")
    try:
        return TrainConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"twintricks train: {exc}") from None


def _check_out(out: str) -> None:
    """Fail now, naming ``--out``, when the output folder cannot be used (before any data loads)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SystemExit(f"twintricks train: --out {out}: is a file, not a folder")
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise SystemExit(f"twintricks train: --out {out}: is under a file ({above}), not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".twintricks-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SystemExit(f"twintricks train: --out {out}: cannot be written ({exc.strerror or exc})") from None


def _recorded_threads(config) -> int | None:
    """The thread count a run being resumed was started with (``config.json``), if any."""
    try:
        recorded = json.loads((Path(config.out) / "config.json").read_text()).get("threads")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1 else None


def _set_threads(threads: int | None, config) -> None:
    """Apply ``--threads``; a resumed run without it uses the count it was started with (torch's CPU
    results depend on it; :func:`twintricks.recipe.fit` warns when a resume uses another one)."""
    recorded = _recorded_threads(config) if config.resume else None
    if threads is None:
        threads = recorded if recorded is not None else auto_threads()
    try:
        note = set_threads(threads)
    except ValueError:
        raise SystemExit("twintricks train: --threads must be >= 1") from None
    if note:
        print(f"note: {note}; --threads may not apply", file=sys.stderr)


def _check_device(config) -> None:
    """Fail now when the backend has no such ``--device`` (before any data loads)."""
    if config.device is None:
        return
    if config.backend == "torch":
        from torch_impl.train import resolve_device
    else:
        from jax_impl.train import resolve_device
    try:
        resolve_device(config.device)
    except ValueError as exc:
        raise SystemExit(f"twintricks train: {exc}") from None


def _load_data(config):
    from twintricks.datasets import load_dataset

    if config.dataset == "cifar10" and config.download:
        if config.data_dir is None:
            raise SystemExit("twintricks train: --download needs --data-dir")
        # lazily: the only code path that may use the network. torchvision only fetches and
        # checks the archive (MD5); twintricks.datasets reads the batches without unpickling code.
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import download_and_extract_archive

        if not os.path.isdir(os.path.join(config.data_dir, CIFAR10.base_folder)):
            download_and_extract_archive(CIFAR10.url, config.data_dir, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    try:
        return load_dataset(config.dataset, config.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"twintricks train: {exc}") from None


_TEACHER_KINDS = "a twintricks checkpoint, a safetensors file of a torch state_dict, or a torch state_dict file"


def _one_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    for x in lines:  # torch's weights-only refusal says what it refused on a later line
        if "unsupported" in x.lower():
            return x
    return " ".join(" ".join(lines).split())[:300] if lines else type(exc).__name__


def _is_twintricks_file(path, head: bytes) -> bool:
    """A format-1 checkpoint, or a safetensors file whose header is unreadable (load_checkpoint
    then says why) or carries twintricks' metadata. ``head``: the file's first bytes."""
    import json
    import struct

    from twintricks.checkpoint import is_safetensors

    if head.startswith(b"TWINTRICKS-CKPT1"):
        return True
    if not is_safetensors(head):
        return False
    (n,) = struct.unpack("<Q", head[:8])
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(min(n, 1 << 28)).decode("utf-8"))
        return header.get("__metadata__", {}).get("format") == "twintricks-checkpoint"
    except Exception:
        return True


def _read_torch_file(path: str) -> dict:
    from twintricks.checkpoint import CheckpointError

    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"teacher {path!r} is a torch file, which needs torch installed to read (pip install 'twintricks[torch]'); "
            "or save the state_dict with safetensors.torch.save_file"
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)  # torch's restricted unpickler
    except Exception as exc:
        raise CheckpointError(f"teacher {path!r} cannot be read as a torch state_dict (weights_only=True): {_one_line(exc)}") from None
    if not (isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())):
        inner = [k for k, v in obj.items() if isinstance(v, dict)] if isinstance(obj, dict) else []
        hint = f" (a dict holding {inner[:4]}: save model.state_dict() itself)" if inner else ""
        raise CheckpointError(f"teacher {path!r} holds a {type(obj).__name__}, not a state_dict of tensors by name{hint}")
    return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.detach().cpu().numpy() for k, v in obj.items()}


def _plain_state_dict(sd: dict) -> dict:
    """Torch-named weights as NumPy: DataParallel's ``module.`` prefix dropped, floating arrays as
    float32 (what the models hold; ``load_state_dict`` would cast the same way), BatchNorm's
    ``num_batches_tracked`` added as 0 where missing (it does not affect the forward pass)."""
    import numpy as np

    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out = {}
    for k, v in sd.items():
        v = np.asarray(v)
        out[k] = v.astype(np.float32) if v.dtype.kind in "fV" and v.dtype != np.float32 else v
    for k in list(out):
        if k.endswith(".running_mean"):
            out.setdefault(k[: -len("running_mean")] + "num_batches_tracked", np.array(0, np.int64))
    return out


def _first_conv(sd: dict) -> str | None:
    return next((k for k in ("conv1.conv.weight", "conv1.weight") if k in sd), None)


def _check_fits(path, backend, name, width, num_classes, weights, in_channels) -> None:
    """Build the teacher's model in ``backend`` and check every weight's name and shape against it."""
    from twintricks.checkpoint import CheckpointError

    what = f"teacher {path!r} does not fit a {name} of width {width} with {num_classes} classes"
    if name not in ("fastnet", "resnet18") or not (width is None or type(width) is int and width >= 1):
        raise CheckpointError(f"teacher {path!r} names an unknown model {name!r} of width {width!r}")
    if backend == "torch":
        import torch

        from torch_impl.models import create_model

        net = create_model(name, num_classes, width=width, in_channels=in_channels)
        try:
            net.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
        except (RuntimeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{what}: {_one_line(exc)}") from None
        return
    import jax

    from jax_impl.models import create_model, init_model

    net = create_model(name, num_classes, width=width)
    want = jax.eval_shape(lambda: init_model(net, jax.random.key(0), (32, 32, in_channels)))
    shapes = lambda tree: {jax.tree_util.keystr(p): tuple(getattr(x, "shape", ())) for p, x in  # noqa: E731
                           jax.tree_util.tree_flatten_with_path(tree)[0]}
    try:
        w, g = shapes(want), shapes(weights)
    except Exception as exc:
        raise CheckpointError(f"{what}: {_one_line(exc)}") from None
    bad = [f"missing {k}" for k in w if k not in g] + [f"unexpected {k}" for k in g if k not in w]
    bad += [f"{k} has shape {g[k]}, the model's is {w[k]}" for k in w if k in g and g[k] != w[k]]
    if bad:
        raise CheckpointError(f"{what}: " + "; ".join(bad[:4]) + (f"; and {len(bad) - 4} more" if len(bad) > 4 else ""))


def load_teacher(path: str, backend: str, num_classes: int, *, model: str | None = None,
                 width: int | None = None, in_channels: int = 3):
    """``(model_name, width, weights)`` of a trained teacher, with ``weights`` in ``backend``'s
    format: a torch-named ``state_dict`` of NumPy arrays for ``"torch"``, linen variables
    ``{"params", "batch_stats"}`` for ``"jax"`` (converted with :mod:`parity.convert` when needed).

    ``path`` may be

    * a twintricks checkpoint written by either backend (:mod:`twintricks.checkpoint`); it names
      its model and width (``model``/``width``, when given, must agree with it);
    * a safetensors file of a torch ``state_dict`` from elsewhere
      (``safetensors.torch.save_file(model.state_dict(), path)``);
    * a torch file of a ``state_dict`` (``torch.save(model.state_dict(), path)``), read with
      ``torch.load(path, weights_only=True)``: this needs torch, whatever the backend.

    For the last two, the model is ``model``/``width`` when given, else read off the weights
    (``conv1.conv.weight``: fastnet, ``conv1.weight`` with ``layer1.*``: resnet18; the width is the
    first convolution's output channels); a ``module.`` prefix (DataParallel) is dropped. Nothing in
    the file is executed. The weights are checked, name by name and shape by shape, against the
    model built with ``num_classes`` classes and ``in_channels`` input channels (the data sets are
    RGB): a one-line :class:`~twintricks.checkpoint.CheckpointError` says what does not fit.
    """
    from pathlib import Path

    from parity.convert import flax_to_torch_state_dict, torch_state_dict_to_flax
    from twintricks.checkpoint import CheckpointError, is_safetensors, load_checkpoint, read_safetensors

    p = Path(path)
    if p.is_dir():
        raise CheckpointError(f"teacher {path!r} is a directory, not a checkpoint file")
    if not p.is_file():
        raise CheckpointError(f"teacher {path!r} does not exist" if not p.exists() else f"teacher {path!r} is not a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"teacher {path!r} cannot be read: {exc.strerror or exc}") from None
    if _is_twintricks_file(p, head):
        payload = load_checkpoint(p)  # refuses format-1 pickles, says how to convert a trusted one
        name, w, fw, weights = payload.get("model_name"), payload.get("width"), payload.get("framework"), payload.get("model")
        if fw not in ("torch", "jax") or not isinstance(weights, dict):
            raise CheckpointError(f"teacher {path!r} is a twintricks checkpoint without a torch or jax model")
        if payload.get("num_classes") != num_classes:
            raise CheckpointError(f"teacher {path!r} has {payload.get('num_classes')} classes, the data set has {num_classes}")
        if model is not None and model != name or width is not None and w is not None and width != w:
            given = " of width ".join(str(x) for x in (model, width) if x is not None)
            raise CheckpointError(f"teacher {path!r} is a {name} of width {w}, the teacher options say {given}")
        if w is None:
            w = width
    else:
        if is_safetensors(head):
            sd = read_safetensors(p)
        elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save's zip, or its older pickle format
            sd = _read_torch_file(str(p))
        else:
            raise CheckpointError(f"teacher {path!r} is not {_TEACHER_KINDS}")
        sd = _plain_state_dict(sd)
        conv = _first_conv(sd)
        name = model
        if name is None:
            if "conv1.conv.weight" in sd:
                name = "fastnet"
            elif "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
                name = "resnet18"
            else:
                raise CheckpointError(
                    f"teacher {path!r}: cannot tell which model its weights are for (keys {sorted(sd)[:3]}...); "
                    "give the teacher's model name"
                )
        w = width if width is not None else (int(sd[conv].shape[0]) if conv and sd[conv].ndim == 4 else None)
        fc = sd.get("fc.weight")
        if fc is not None and fc.ndim == 2 and fc.shape[0] != num_classes:
            raise CheckpointError(f"teacher {path!r} has {fc.shape[0]} classes, the data set has {num_classes}")
        fw, weights = "torch", sd
    try:
        if backend == "torch" and fw == "jax":
            weights = flax_to_torch_state_dict(weights)
        elif backend == "jax" and fw == "torch":
            weights = torch_state_dict_to_flax(weights)
        if backend == "torch":
            weights = _plain_state_dict(weights)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"teacher {path!r} has weights that cannot be converted for {backend}: {_one_line(exc)}") from None
    _check_fits(path, backend, name, w, num_classes, weights, in_channels)
    return name, w, weights


def _start_scale_out(args, config) -> bool:
    """Join a multi-process job when there is one (jax: :func:`jax_impl.distributed.initialize`
    with ``--coordinator``/``--num-processes``/``--process-id`` or the environment; torch: the
    trainer joins torchrun's process group) and say whether this process is the one that prints."""
    jax_flags = (args.coordinator, args.num_processes, args.process_id)
    if config.backend == "torch":
        if config.devices is not None or any(v is not None for v in jax_flags):
            raise SystemExit(
                "twintricks train: --devices/--coordinator/--num-processes/--process-id are for --backend jax; torch "
                "runs one process per device: torchrun --nproc_per_node=N -m twintricks_cli train --backend torch ..."
            )
        return os.environ.get("RANK", "0") == "0"
    from jax_impl import distributed as jd

    try:
        jd.initialize(*jax_flags)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SystemExit(f"twintricks train: jax.distributed: {_one_line(exc)}") from None
    return jd.is_main()


def run(args) -> int:
    """Run ``twintricks train`` with parsed arguments; returns the exit status."""
    from twintricks.checkpoint import CheckpointError

    from twintricks.recipe import TrainingDiverged

    config = config_from_args(args)
    _check_out(config.out)
    _set_threads(args.threads, config)
    main = _start_scale_out(args, config)
    _check_device(config)
    dataset = _load_data(config)
    if main:
        print(
            f"twintricks train: {config.backend} | {dataset.name}: {len(dataset.train_labels)} train / "
            f"{len(dataset.test_labels)} test images {dataset.image_shape}, {dataset.num_classes} classes | "
            f"{config.model} | out {config.out}",
            flush=True,
        )
    stops = (CheckpointError, TrainingDiverged)
    if config.backend == "torch":
        from torch_impl.distributed import PeerLostError
        from torch_impl.train import train

        stops += (PeerLostError,)
        errors = contextlib.nullcontext
    else:
        from jax_impl.distributed import PeerLostError, collective_errors as errors, leave
        from jax_impl.train import train

        stops += (PeerLostError,)
    try:
        teacher = load_teacher(
            config.teacher, config.backend, dataset.num_classes, model=config.teacher_model,
            width=config.teacher_width, in_channels=dataset.image_shape[2],
        ) if config.teacher else None
        with errors():
            summary = train(config, dataset, out=config.out, teacher=teacher)
    except stops as exc:
        if config.backend == "jax" and isinstance(exc, PeerLostError):
            leave(f"twintricks train: {exc}")  # at once: a normal exit would wait for the lost peer at jax's shutdown
        raise SystemExit(f"twintricks train: {exc}") from None
    if main:
        print(
            f"final test accuracy {summary['final_test_acc']:.4f} | wall {summary['wall_s']:.1f}s | "
            f"{summary['images_per_s']:.0f} img/s | compile {summary['compile_s']:.1f}s | world size "
            f"{summary['world_size']} | {config.out}/summary.json"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    a = parser.parse_args()
    sys.exit(a.func(a))
