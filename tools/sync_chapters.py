"""Keep every chapter's hidden install cell and its paired notebook in sync with the source.

    python tools/sync_chapters.py           # rewrite install cells and .ipynb pairs
    python tools/sync_chapters.py --check   # exit 1 and list what is out of sync

The `.md` (MyST notebook) is the source of truth. Its first code cell, tagged `remove-cell`,
installs `sgdlab` on Colab from the repository named in `_config.yml`; the `.ipynb` beside it
is written by jupytext, without outputs, for the Colab button.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parent.parent
INSTALL_MARK = "# Colab only: install this book's package"


def install_cell_source(root: Path = ROOT) -> str:
    cfg = yaml.safe_load((root / "_config.yml").read_text())
    url, branch = cfg["repository"]["url"].rstrip("/"), cfg["repository"]["branch"]
    return (
        f"{INSTALL_MARK} (Colab's own JAX stays untouched).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "sgdlab @ git+{url}@{branch}#subdirectory=code"'
    )


def chapters(root: Path = ROOT) -> list[Path]:
    return sorted((root / "chapters").glob("[0-9][0-9]-*.md"))


def synced_notebook(md: Path, root: Path = ROOT) -> tuple[str, str]:
    """Return (md text, ipynb text) as they should be on disk."""
    nb = jupytext.read(md)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or INSTALL_MARK not in code[0].source:
        raise ValueError(f"{md.name}: the first code cell must be the Colab install cell ({INSTALL_MARK!r})")
    first = code[0]
    first.source = install_cell_source(root)
    if "remove-cell" not in first.metadata.get("tags", []):
        raise ValueError(f"{md.name}: the install cell must be tagged remove-cell")
    md_text = jupytext.writes(nb, fmt="md:myst")
    pair = jupytext.reads(md_text, fmt="md:myst")
    pair.metadata.setdefault("jupytext", {})["formats"] = "ipynb,md:myst"
    for i, cell in enumerate(pair.cells):
        # stable ids, so that an unchanged chapter gives a byte-identical notebook
        cell.id = hashlib.sha1(f"{i}:{cell.source}".encode()).hexdigest()[:8]
    ipynb_text = jupytext.writes(pair, fmt="ipynb")
    return md_text, ipynb_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report what is out of sync")
    args = parser.parse_args(argv)
    stale = []
    for md in chapters():
        md_text, ipynb_text = synced_notebook(md)
        ipynb = md.with_suffix(".ipynb")
        for path, text in ((md, md_text), (ipynb, ipynb_text)):
            if not path.exists() or path.read_text() != text:
                stale.append(path)
                if not args.check:
                    path.write_text(text)
    if args.check and stale:
        print("out of sync (run `make sync`):", *[str(p.relative_to(ROOT)) for p in stale], sep="\n  ")
        return 1
    if not args.check:
        print(f"synced {len(chapters())} chapters" + (f"; rewrote {len(stale)} files" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
