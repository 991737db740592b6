"""Execute one notebook with nbclient, as Colab would: run by tests/test_colab_runtime.py with
the Python of the Colab-like virtual environment (this file imports only nbclient/nbformat).

    python colab_execute.py NOTEBOOK --out EXECUTED.ipynb --cwd DIR [--fake-colab-install OLD NEW]

``--fake-colab-install OLD NEW`` makes the hidden install cell run as on Colab: a stand-in
``google.colab`` module is put in ``sys.modules`` before the first code cell and removed after
it, and the repository URL ``OLD`` in that cell is replaced by ``NEW`` (a local git URL).
Prints one JSON line: status ("ok" or "error"), error text, seconds.

The client waits for each kernel message in slices of ``SLICE`` seconds. On this machine
(Python 3.13, pyzmq 27, ipykernel 6.17.1 and 6.31.0 alike) a wait now and then missed the
wake-up for a reply the kernel had already sent, and lasted the whole cell timeout (300 s,
the kernel idle); each slice ends with a non-blocking look at the socket, so a missed wake-up
costs at most one slice. Without slices chapter 4 stalled so in 3 of 6 runs (one of them then
failed); with them it ran twice on ipykernel 6.17.1 without a stall (December 2026).
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

SLICE = 1.0  # seconds


def sliced(get_msg):
    """``get_msg(timeout)`` of a kernel client channel, waiting at most ``SLICE`` seconds at a time."""

    async def get(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE if deadline is None else max(0.0, min(SLICE, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get


class SlicedWaits(NotebookClient):
    """nbclient's client, its shell and IOPub waits cut into slices (see the module docstring)."""

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        kc.shell_channel.get_msg = sliced(kc.shell_channel.get_msg)
        kc.iopub_channel.get_msg = sliced(kc.iopub_channel.get_msg)
        return kc


FAKE_COLAB = 'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")'
UNFAKE_COLAB = 'import sys\nsys.modules.pop("google.colab", None)'


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    ap.add_argument("--fake-colab-install", nargs=2, metavar=("OLD_URL", "NEW_URL"))
    args = ap.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    if args.fake_colab_install:
        old, new = args.fake_colab_install
        first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        install = nb.cells[first]
        if old not in install.source:
            print(json.dumps({"status": "error", "error": f"install cell does not name {old}", "seconds": 0}))
            return 1
        install.source = install.source.replace(old, new)
        nb.cells.insert(first, nbformat.v4.new_code_cell(FAKE_COLAB))
        nb.cells.insert(first + 2, nbformat.v4.new_code_cell(UNFAKE_COLAB))

    client = SlicedWaits(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": args.cwd}})
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        client.execute()
    except CellExecutionError as exc:
        status, error = "error", str(exc)
    except Exception as exc:  # kernel died, timeout, ...
        status, error = "error", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    nbformat.write(nb, args.out)
    print(json.dumps({"status": status, "error": error[-6000:], "seconds": round(seconds, 1)}))
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
