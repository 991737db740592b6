"""Command line: ``python -m sgdlab.coursework student [--format plain|nbgrader] [--chapters DIR] [--out DIR]``.

``--format plain`` (the default) writes one student notebook per chapter into ``--out``;
``--format nbgrader`` writes nbgrader source notebooks ``OUT/source/<chapter>/<chapter>.ipynb``
(run ``nbgrader generate_assignment <chapter>`` in ``OUT`` to release them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import nbgrader, student


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sgdlab.coursework", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("student", help="write student notebooks (solutions removed, stubs left)")
    cmd.add_argument("--format", choices=["plain", "nbgrader"], default="plain",
                     help="plain: student notebooks; nbgrader: an nbgrader course's source notebooks")
    cmd.add_argument("--chapters", type=Path, default=Path("chapters"), help="folder of NN-name.md chapters")
    cmd.add_argument("--out", type=Path, default=Path("student"),
                     help="folder to write the notebooks into (nbgrader: the course folder)")
    cmd.add_argument("--points", type=float, default=1.0,
                     help="nbgrader: points of each coded exercise's autograder test (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.format == "nbgrader":
            written = nbgrader.build(args.chapters, args.out, points=args.points)
        else:
            written = student.build(args.chapters, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    for path in written:
        print(path)
    if args.format == "nbgrader":
        print(f"wrote {len(written)} nbgrader source notebooks into {args.out / 'source'}; release one with "
              f"`nbgrader generate_assignment <chapter>` in {args.out}", file=sys.stderr)
    else:
        print(f"wrote {len(written)} student notebooks into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
