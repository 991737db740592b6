"""Chapter sources: pairs in sync, notebooks stripped, the chapter template followed."""

import json
import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import sync_chapters  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]-*.md"))


def test_pairs_are_in_sync():
    stale = []
    for md in CHAPTERS:
        md_text, ipynb_text = sync_chapters.synced_notebook(md)
        ipynb = md.with_suffix(".ipynb")
        if md.read_text() != md_text or not ipynb.exists() or ipynb.read_text() != ipynb_text:
            stale.append(md.name)
    assert not stale, f"out of sync, run `make sync`: {stale}"


def test_committed_notebooks_have_no_outputs():
    for nb_path in sorted((ROOT / "chapters").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
        assert not dirty, f"{nb_path.name}: cells {dirty} carry outputs"


def test_chapter_template():
    for md in CHAPTERS:
        nb = jupytext.read(md)
        text = md.read_text()
        assert nb.metadata.get("kernelspec"), f"{md.name}: no kernelspec, it would not be executed"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "remove-cell" in code[0].metadata.get("tags", []), f"{md.name}: install cell must come first"
        assert "setup" in code[1].metadata.get("tags", []), f"{md.name}: setup cell must follow the install cell"
        assert "by_scale(" in code[1].source, f"{md.name}: sizes must come from sgdlab.by_scale in the setup cell"
        for heading in ("## Summary", "## Exercises", "## Further reading"):
            assert heading in text, f"{md.name}: missing {heading!r}"
        assert text.count("{exercise}") >= 4, f"{md.name}: fewer than four exercises"
        assert text.count("{solution-start}") == text.count("{solution-end}")
        assert "prf:theorem" in text or "prf:lemma" in text, f"{md.name}: no theorem"
        assert "{cite:" in text


def test_every_chapter_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    for md in CHAPTERS:
        assert f"chapters/{md.stem}" in files, f"{md.name} is not in _toc.yml"


def test_no_inline_formula_is_cut_by_a_list_marker():
    """A line starting with '+ ', '- ' or '* ' begins a list item even inside an open $...$ (the
    block parser runs first), which breaks the formula: put the operator at the end of the line before."""
    import re

    for md in CHAPTERS:
        nb = jupytext.read(md)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            text = re.sub(r"\$\$.*?\$\$", "", cell.source, flags=re.S)   # display math is a block of its own
            paragraph = ""
            for line in text.split("\n"):
                if not line.strip():
                    paragraph = ""
                    continue
                opened = len(re.findall(r"(?<!\\)\$", paragraph)) % 2 == 1
                assert not (opened and re.match(r"[+\-*] ", line)), f"{md.name}: a list marker cuts a formula at {line!r}"
                paragraph += line + "\n"
