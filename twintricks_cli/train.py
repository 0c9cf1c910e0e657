"""The ``twintricks train`` subcommand: one recipe, in PyTorch or in JAX.

``twintricks train --backend torch|jax`` loads the data (:mod:`twintricks.datasets`), builds the
backend's :class:`Trainer` (:mod:`torch_impl.train` / :mod:`jax_impl.train`) and runs the shared
epoch loop (:func:`twintricks.recipe.fit`), writing ``config.json``, ``metrics.jsonl``,
``checkpoint.ckpt`` (after every epoch, atomically), ``summary.json`` and ``curves.png`` to
``--out``. A ``--teacher`` file is read by the backend's loader (:mod:`torch_impl.teacher`,
:mod:`jax_impl.teacher`: a checkpoint of either backend, converted, or a torch ``state_dict``).

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
import os
import sys
import tempfile
from pathlib import Path

from twintricks.teacher import one_line
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
    from twintricks.tricks import OptionConflict, flag_names

    fields = {o.name: getattr(args, o.name) for o in OPTIONS}
    fields["out"] = args.out or os.path.join("runs", f"{args.backend}-{args.dataset}-{args.model}")
    try:
        return TrainConfig(**fields)
    except OptionConflict as exc:  # options that conflict: named by their flags
        raise SystemExit(f"twintricks train: {flag_names(str(exc), OPTIONS)}") from None
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
    """The thread count a run being resumed was started with (``config.json``), if any; a
    ``config.json`` that is not what twintricks writes (too large or deep, not JSON, a bad
    ``threads``) is a one-line error naming it (:func:`twintricks.schema.check_config_json`)."""
    from twintricks.files import load_json
    from twintricks.schema import check_config_json

    path = Path(config.out) / "config.json"
    try:
        text = path.read_bytes()
    except OSError:
        return None
    try:
        return check_config_json(load_json(text, what=str(path)), where=str(path)).get("threads")
    except ValueError as exc:
        raise SystemExit(f"twintricks train: --resume: {exc}") from None


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


def _check_files(config) -> None:
    """The data set's folder and the teacher's file, before any data loads: a one-line error naming
    the flag when one is missing, or given where it would do nothing."""
    from twintricks.recipe import IN_MEMORY_DATASETS

    embedded = config.dataset in IN_MEMORY_DATASETS and config.dataset != "cifar10"
    if embedded and config.data_dir is not None:
        raise SystemExit(f"twintricks train: --data-dir: --dataset {config.dataset} is embedded, it would do nothing")
    if config.download and config.dataset != "cifar10":
        raise SystemExit(f"twintricks train: --download fetches cifar10 only, not --dataset {config.dataset}: it would "
                         "do nothing")
    if not embedded:
        if config.data_dir is None and config.download:
            raise SystemExit("twintricks train: --download needs --data-dir (the folder to download cifar10 into)")
        if config.data_dir is None:
            raise SystemExit(f"twintricks train: `data_dir` is required for --dataset {config.dataset}: the folder "
                             "holding your data (--data-dir)")
        if not config.download and not os.path.isdir(config.data_dir):
            raise SystemExit(f"twintricks train: --data-dir {config.data_dir}: no such folder")
    if config.teacher is not None and not os.path.isfile(config.teacher):
        raise SystemExit(f"twintricks train: --teacher {config.teacher}: no such file")


def _check_late(config) -> None:
    """The checks of the data and teacher files and of the backend's devices: one line each, before
    any data loads (they used to surface as a traceback after it, or not at all). The options' own cross checks (the
    teacher's settings without ``--teacher``, RandAugment's magnitude and bins, ``--mix-mode pair``'s
    even batch) are the recipe's:
    :class:`~twintricks.recipe.TrainConfig` runs them (:attr:`twintricks.tricks.Trick.cross_check`)."""
    _check_files(config)
    if config.backend == "jax":
        from jax_impl import distributed as jd
        from jax_impl.train import resolve_device

        try:
            if config.devices not in (None, 1) and config.device is not None and ":" in config.device:
                raise ValueError(f"`devices` {config.devices}: `device` {config.device!r} names a single device")
            mesh = jd.make_mesh(config.devices, platform=resolve_device(config.device).platform)
            jd.world(mesh, config.batch_size)  # the batch splits evenly over the devices
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"twintricks train: --devices: {one_line(exc)}") from None


def _load_data(config):
    """The data set: held in memory (digits, cifar10) or streamed (folder, shards, packed: only
    indexed here, :func:`twintricks.streaming.open_streamed`); a one-line error naming what is wrong."""
    from twintricks.datasets import load_dataset

    if config.streams():
        from twintricks.streaming import open_streamed

        try:
            return open_streamed(config)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"twintricks train: {exc}") from None

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


def load_teacher(path: str, backend: str, num_classes: int, *, model: str | None = None,
                 width: int | None = None, in_channels: int = 3):
    """``(model_name, width, weights)`` of the ``--teacher`` file in ``backend``'s format: the
    backend's loader, :func:`torch_impl.teacher.load_teacher` (a torch-named ``state_dict`` of NumPy
    arrays) or :func:`jax_impl.teacher.load_teacher` (linen variables); the formats it reads are
    :func:`twintricks.teacher.read_teacher`'s."""
    if backend == "torch":
        from torch_impl.teacher import load_teacher as load
    else:
        from jax_impl.teacher import load_teacher as load
    return load(path, num_classes, model=model, width=width, in_channels=in_channels)


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
        if "WORLD_SIZE" in os.environ and "RANK" in os.environ:  # under torchrun: its SIGTERM ends with our line
            from twintricks.distributed import stop_on_sigterm

            stop_on_sigterm("twintricks train")
        return os.environ.get("RANK", "0") == "0"
    from jax_impl import distributed as jd

    try:
        jd.initialize(*jax_flags)
    except (TypeError, ValueError, RuntimeError) as exc:
        msg = one_line(exc)
        for name, flag in (("coordinator_address", "--coordinator"), ("num_processes", "--num-processes"),
                           ("process_id", "--process-id")):
            msg = msg.replace(f"`{name}`", flag)
        raise SystemExit(f"twintricks train: jax.distributed: {msg}") from None
    return jd.is_main()


def _count(dataset, split: str) -> str:
    """How many images a split holds (streamed: indexed, read while training)."""
    labels = getattr(dataset, f"{split}_labels", None)
    return str(len(labels)) if labels is not None else f"{len(getattr(dataset, split))} streamed"


def run(args) -> int:
    """Run ``twintricks train`` with parsed arguments; returns the exit status."""
    from twintricks.checkpoint import CheckpointError

    from twintricks.recipe import TrainingDiverged

    config = config_from_args(args)
    _check_out(config.out)
    _set_threads(args.threads, config)
    main = _start_scale_out(args, config)
    _check_device(config)
    _check_late(config)
    dataset = _load_data(config)
    if main:
        print(
            f"twintricks train: {config.backend} | {dataset.name}: {_count(dataset, 'train')} train / "
            f"{_count(dataset, 'test')} test images {dataset.image_shape}, {dataset.num_classes} classes | "
            f"{config.model} | out {config.out}",
            flush=True,
        )
    stops = (CheckpointError, TrainingDiverged)
    if config.streams():  # a bad image met while reading (on_bad_image="error"), a loader worker that died
        from twintricks.data import BadImageError, LoaderWorkerError

        stops += (BadImageError, LoaderWorkerError)
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
        if summary.get("skipped_images"):
            print(f"{summary['skipped_images']} bad image(s) were skipped (--on-bad-image skip): listed in "
                  f"{config.out}/summary.json")
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    a = parser.parse_args()
    sys.exit(a.func(a))
