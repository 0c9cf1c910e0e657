"""The ``twintricks train`` subcommand: one recipe, in PyTorch or in JAX.

``twintricks train --backend torch|jax`` loads the data (:mod:`twintricks.datasets`), builds the
backend's :class:`Trainer` (:mod:`torch_impl.train` / :mod:`jax_impl.train`) and runs the shared
epoch loop (:func:`twintricks.recipe.fit`), writing ``config.json``, ``metrics.jsonl``,
``checkpoint.ckpt`` (after every epoch, atomically), ``summary.json`` and ``curves.png`` to
``--out``. A ``--teacher`` checkpoint written by either backend is converted on load
(:func:`parity.convert.torch_state_dict_to_flax` / :func:`parity.convert.flax_to_torch_state_dict`).

Backends are imported only once the arguments are parsed, after ``--threads`` has been applied
(XLA reads its thread flags when jax is first imported).
"""

from __future__ import annotations

import argparse
import os
import sys

from twintricks_cli.threads import auto_threads, set_threads

__all__ = ["add_parser", "run", "config_from_args", "load_teacher"]


def add_parser(sub) -> None:
    """Add ``train`` to the ``twintricks`` subparsers."""
    from twintricks.datasets import DATASETS
    from twintricks.recipe import OPTIMIZERS, POLICIES, SCHEDULES

    p = sub.add_parser(
        "train",
        help="train an image classifier with any combination of the tricks, in torch or jax",
        description="Train with the twintricks recipe. Defaults: scikit-learn digits (embedded, "
        "32x32 RGB), the small fastnet, SGD+Nesterov, cosine schedule, 6 epochs.",
    )
    g = p.add_argument_group("run")
    g.add_argument("--backend", choices=("torch", "jax"), default="torch")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/<backend>-<dataset>-<model>)")
    g.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.ckpt")
    g.add_argument("--precision", choices=("float32", "bfloat16"), default="float32", help="bfloat16: autocast/compute dtype (GPUs)")
    g.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the torch step (auto: on for CUDA, off on CPU); jax always jits")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for the backend (default: 1 when the machine is busy — load average >= "
                   "cores — where 2 threads were measured 4x slower than 1; else the backend's default)")
    g.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no per-step progress bar")
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", choices=DATASETS, default="digits")
    g.add_argument("--data-dir", default=None, metavar="DIR",
                   help="cifar10: a cifar-10-batches-py dir, an image-folder dir or a .tar.gz of one; folder: your data")
    g.add_argument("--download", action="store_true", help="cifar10: let torchvision download it into --data-dir")
    g.add_argument("--model", choices=("fastnet", "resnet18"), default="fastnet")
    g.add_argument("--width", type=int, default=None, help="base width (fastnet 32, resnet18 64)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=6)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--eval-batch-size", type=int, default=512)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    g.add_argument("--lr", type=float, default=None, help="peak lr (default: sgd 0.05, adamw 2e-3, adabound* 1e-3)")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--final-lr", type=float, default=0.1, help="AdaBound family: the SGD lr the bounds converge to")
    g.add_argument("--adabound-gamma", type=float, default=1e-3)
    g.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    g.add_argument("--warmup-epochs", type=float, default=0.0)
    g.add_argument("--milestones", type=float, nargs="+", default=[0.5, 0.75], help="step schedule: fractions of training")
    g.add_argument("--lr-decay", type=float, default=0.1, help="step schedule: factor at each milestone")
    g = p.add_argument_group("tricks (off by default)")
    g.add_argument("--label-smoothing", type=float, default=0.0, metavar="E")
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA")
    g.add_argument("--cutout", type=int, default=0, metavar="LENGTH")
    g.add_argument("--cutout-holes", type=int, default=1)
    g.add_argument("--ricap", type=float, default=0.0, metavar="BETA")
    g.add_argument("--crop-flip", action="store_true", help="random resized crop + horizontal flip")
    g.add_argument("--crop-scale", type=float, nargs=2, default=[0.35, 1.0], metavar=("MIN", "MAX"))
    g.add_argument("--autoaugment", choices=POLICIES, default=None, metavar="POLICY")
    g.add_argument("--teacher", default=None, metavar="CKPT", help="checkpoint of a trained teacher (either backend)")
    g.add_argument("--kd-temperature", type=float, default=4.0, metavar="T")
    g.add_argument("--kd-alpha", type=float, default=0.9, metavar="A")
    p.set_defaults(func=run)


def config_from_args(args):
    """A :class:`~twintricks.recipe.TrainConfig` from parsed arguments (errors → SystemExit)."""
    from twintricks.recipe import TrainConfig

    fields = dict(
        backend=args.backend, dataset=args.dataset, data_dir=args.data_dir, model=args.model, width=args.width,
        epochs=args.epochs, batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
        weight_decay=args.weight_decay, final_lr=args.final_lr, adabound_gamma=args.adabound_gamma,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, milestones=tuple(args.milestones),
        lr_decay=args.lr_decay, label_smoothing=args.label_smoothing, mixup=args.mixup, cutout=args.cutout,
        cutout_holes=args.cutout_holes, ricap=args.ricap, crop_flip=args.crop_flip,
        crop_scale=tuple(args.crop_scale), autoaugment=args.autoaugment, teacher=args.teacher,
        kd_temperature=args.kd_temperature, kd_alpha=args.kd_alpha, seed=args.seed, precision=args.precision,
        compile=args.compile, resume=args.resume, progress=args.progress, download=args.download, device=args.device,
    )
    fields["out"] = args.out or os.path.join("runs", f"{args.backend}-{args.dataset}-{args.model}")
    try:
        return TrainConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"twintricks train: {exc}") from None


def _set_threads(threads: int | None) -> None:
    try:
        note = set_threads(threads if threads is not None else auto_threads())
    except ValueError:
        raise SystemExit("twintricks train: --threads must be >= 1") from None
    if note:
        print(f"note: {note}; --threads may not apply", file=sys.stderr)


def _load_data(config):
    from twintricks.datasets import load_dataset

    if config.dataset == "cifar10" and config.download:
        if config.data_dir is None:
            raise SystemExit("twintricks train: --download needs --data-dir")
        import torchvision  # lazily: the only code path that may use the network

        torchvision.datasets.CIFAR10(config.data_dir, train=True, download=True)
        torchvision.datasets.CIFAR10(config.data_dir, train=False, download=True)
    try:
        return load_dataset(config.dataset, config.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"twintricks train: {exc}") from None


def load_teacher(path: str, backend: str, num_classes: int):
    """``(model_name, width, weights)`` of a teacher checkpoint, in ``backend``'s weight format
    (converted with :mod:`parity.convert` when it was written by the other backend)."""
    from parity.convert import flax_to_torch_state_dict, torch_state_dict_to_flax
    from twintricks.checkpoint import CheckpointError, load_checkpoint

    payload = load_checkpoint(path)
    if payload.get("num_classes") != num_classes:
        raise CheckpointError(
            f"teacher {path!r} has {payload.get('num_classes')} classes, the data set has {num_classes}"
        )
    weights, fw = payload["model"], payload["framework"]
    if backend == "torch" and fw == "jax":
        weights = flax_to_torch_state_dict(weights)
    elif backend == "jax" and fw == "torch":
        weights = torch_state_dict_to_flax(weights)
    return payload["model_name"], payload["width"], weights


def run(args) -> int:
    """Run ``twintricks train`` with parsed arguments; returns the exit status."""
    from twintricks.checkpoint import CheckpointError

    config = config_from_args(args)
    _set_threads(args.threads)
    dataset = _load_data(config)
    print(
        f"twintricks train: {config.backend} | {dataset.name}: {len(dataset.train_labels)} train / "
        f"{len(dataset.test_labels)} test images {dataset.image_shape}, {dataset.num_classes} classes | "
        f"{config.model} | out {config.out}",
        flush=True,
    )
    try:
        teacher = load_teacher(config.teacher, config.backend, dataset.num_classes) if config.teacher else None
        if config.backend == "torch":
            from torch_impl.train import train
        else:
            from jax_impl.train import train
        summary = train(config, dataset, out=config.out, teacher=teacher)
    except CheckpointError as exc:
        raise SystemExit(f"twintricks train: {exc}") from None
    except RuntimeError as exc:
        if type(exc).__name__ == "TrickUnavailableError":
            raise SystemExit(f"twintricks train: {exc}") from None
        raise
    print(
        f"final test accuracy {summary['final_test_acc']:.4f} | wall {summary['wall_s']:.1f}s | "
        f"{summary['images_per_s']:.0f} img/s | compile {summary['compile_s']:.1f}s | {config.out}/summary.json"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    a = parser.parse_args()
    sys.exit(a.func(a))
