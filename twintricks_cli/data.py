"""``twintricks data``: prepare data sets for streaming (``pack``) and look at one (``describe``).

``twintricks data pack SRC DST`` copies an image folder (or tar shards, ``--from shards``) into
ArrayRecord files that grain reads with random access (:func:`twintricks.data.pack`); train on
them with ``twintricks train --dataset packed --data-dir DST``. ``twintricks data describe PATH``
prints what ``config.json`` would record of a data set (its index, fingerprint, skipped files).
Every error is one line naming the path or file.
"""

from __future__ import annotations

import json
import sys

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``data`` (with ``pack`` and ``describe``) to the ``twintricks`` subparsers."""
    from twintricks.data import ON_BAD_IMAGE, STREAMING_DATASETS

    p = sub.add_parser("data", help="pack an image folder for fast streaming, or describe a data set",
                       description="'twintricks data pack SRC DST' copies an image folder (or tar shards) into "
                       "ArrayRecord files that grain reads with random access; train on them with 'twintricks "
                       "train --dataset packed --data-dir DST'. 'twintricks data describe PATH' prints what "
                       "config.json would record of a data set.")
    cmds = p.add_subparsers(dest="data_command", required=True)
    pk = cmds.add_parser("pack", help="copy an image folder (or tar shards) into ArrayRecord files",
                         description="Copies every image of SRC's train and test (or val) splits, byte for byte, "
                         "into ArrayRecord files in DST (a new folder), with twintricks-packed.json.")
    pk.add_argument("src", metavar="SRC", help="the data set: an image folder (SRC/train/<class>/<image>) or tar shards")
    pk.add_argument("dst", metavar="DST", help="the folder to write (must not hold a packed data set)")
    pk.add_argument("--from", dest="kind", choices=[k for k in STREAMING_DATASETS if k != "packed"], default="folder",
                    help="what SRC is (default: folder)")
    pk.add_argument("--images-per-file", type=int, default=10_000, metavar="N",
                    help="images per ArrayRecord file (default 10000: ~1 GB of ImageNet JPEGs)")
    pk.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="error",
                    help="a file the index finds unusable: stop (error, default) or leave it out and list it (skip)")
    pk.set_defaults(func=_run_pack)
    ds = cmds.add_parser("describe", help="print a data set's index summary as JSON (what config.json records)")
    ds.add_argument("path", metavar="PATH")
    ds.add_argument("--kind", choices=STREAMING_DATASETS, default="folder", help="the data set's kind (default: folder)")
    ds.add_argument("--split", choices=("train", "test"), default="train")
    ds.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="error")
    ds.set_defaults(func=_run_describe)


def _fail(cmd: str, exc: Exception):
    msg = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename:
        msg = f"{exc.filename}: {exc.strerror or exc}"
    raise SystemExit(f"twintricks data {cmd}: {msg}") from None


def _run_pack(args) -> int:
    from twintricks.data import pack

    try:
        meta = pack(args.src, args.dst, kind=args.kind, images_per_file=args.images_per_file,
                    on_bad_image=args.on_bad_image, log=lambda line: print(line, flush=True))
    except (ValueError, TypeError, OSError) as exc:
        _fail("pack", exc)
    for split, entry in meta["splits"].items():
        skipped = f", {len(entry['skipped'])} bad files left out" if entry["skipped"] else ""
        print(f"{split}: {entry['images']} images in {len(entry['files'])} files{skipped}; fingerprint {entry['fingerprint'][:16]}")
    print(f"train on it: twintricks train --dataset packed --data-dir {args.dst}")
    return 0


def _run_describe(args) -> int:
    from twintricks.data import open_source

    try:
        source = open_source(args.kind, args.path, split=args.split, on_bad_image=args.on_bad_image)
    except (ValueError, TypeError, OSError) as exc:
        _fail("describe", exc)
    json.dump(source.describe(), sys.stdout, indent=2)
    print()
    return 0
