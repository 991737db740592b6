"""Command line: ``python -m sgdlab.coursework student [--chapters DIR] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .student import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sgdlab.coursework", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write student notebooks (solutions removed, stubs left)")
    student.add_argument("--chapters", type=Path, default=Path("chapters"), help="folder of NN-name.md chapters")
    student.add_argument("--out", type=Path, default=Path("student"), help="folder to write the notebooks into")
    args = parser.parse_args(argv)
    try:
        written = build(args.chapters, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    for path in written:
        print(path)
    print(f"wrote {len(written)} student notebooks into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
