"""`make test`: every check of the book, in stages, two at a time, with a time table at the end.

    python tools/test_stages.py [--only NAME ...] [--serial]

A stage is one command (a pytest selection or the book build). Stages of a group run at the
same time: most of them spend their time in one Python thread (small JAX programs are
dispatch-bound, compilation is single-threaded), so two of them share a 2-core machine well.
Groups run in order, because the browser checks need the built book. Each stage writes its
output to ``_build/test-logs/<stage>.log``; the last lines of each are printed when it ends, the
whole log when it fails. The exit status is non-zero when any stage failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "_build" / "test-logs"
PY = sys.executable
UNIT = "not built_book and not colab_runtime and not lowest_versions and not nbgrader"

# (name, command, what it checks); groups run one after another, stages of a group together
GROUPS = [
    [
        ("unit", [PY, "-m", "pytest", "tests", "-m", UNIT, "-q"], "package, chapter sources, coursework (pinned versions)"),
        ("lowest", [PY, "-m", "pytest", "tests", "-m", "lowest_versions", "-q"], "unit tests at the lowest supported versions"),
    ],
    [
        ("book", ["make", "book"], "every chapter executed at book scale, HTML built with warnings as errors"),
        ("colab", [PY, "-m", "pytest", "tests", "-m", "colab_runtime or nbgrader", "-q"],
         "every chapter in a Colab-like runtime at smoke scale; nbgrader export"),
    ],
    [
        ("browser", [PY, "-m", "pytest", "tests", "-m", "built_book", "-q"], "the built pages in headless Chromium"),
    ],
]


def tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def run_group(group, serial: bool) -> list[tuple[str, float, int, str]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    results = []
    pending = list(group)
    running: list[tuple[str, subprocess.Popen, float, str, Path]] = []
    while pending or running:
        while pending and (not running or not serial):
            name, cmd, what = pending.pop(0)
            log = LOGS / f"{name}.log"
            print(f"[{time.strftime('%H:%M:%S')}] start {name}: {' '.join(cmd)}", flush=True)
            with open(log, "w") as out:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            running.append((name, proc, time.perf_counter(), what, log))
        time.sleep(1.0)
        for item in list(running):
            name, proc, t0, what, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            seconds = time.perf_counter() - t0
            status = "passed" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
            print(f"[{time.strftime('%H:%M:%S')}] {name} {status} in {seconds / 60:.1f} min "
                  f"(log: {log.relative_to(ROOT)})", flush=True)
            print(tail(log, 400 if proc.returncode else 6), flush=True)
            results.append((name, seconds, proc.returncode, what))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="run only these stages")
    parser.add_argument("--serial", action="store_true", help="one stage at a time")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = []
    for group in GROUPS:
        group = [s for s in group if not args.only or s[0] in args.only]
        if group:
            results += run_group(group, args.serial)
        if any(code for _, _, code, _ in results):
            break  # the browser checks need a built book
    total = time.perf_counter() - start
    print("\nmake test, stage by stage (wall clock; stages of a group ran at the same time):")
    print(f"  {'stage':<8} {'minutes':>8}  {'result':<8} what")
    for name, seconds, code, what in results:
        print(f"  {name:<8} {seconds / 60:>8.1f}  {'passed' if code == 0 else 'FAILED':<8} {what}")
    print(f"  {'total':<8} {total / 60:>8.1f}")
    return 1 if any(code for _, _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
