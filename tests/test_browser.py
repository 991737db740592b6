"""The built book as a reader meets it: every page loaded in a real headless Chromium.

For each HTML page of the built book this checks that

* MathJax typesets every formula: each ``.math`` element holds a rendered ``mjx-container``,
  no formula contains an error node (``merror``: unbalanced braces, bad environments) or an
  undefined macro (MathJax's ``noundefined`` extension draws those as red ``\\name`` text),
  and no TeX is left raw in the prose (``$...$``, ``\\(...\\)``, ``\\[...\\]``);
* every image has loaded with a non-zero natural size;
* no output shows a traceback or an error (cells tagged ``raises-exception`` excepted), and
  no script on the page throws (the theme's known ``THEBE_JS_URL`` error excepted);
* a chapter's Colab button opens that chapter's ``.ipynb`` in the repository of
  ``_config.yml`` on ``main``;
* exercise solutions are collapsed until their toggle is clicked, and open when it is;
* no interactive widget is left on the page (explorers must be static figures).

MathJax is served from a local copy (``tools/node_modules/mathjax``, installed by
``tools/install_test_deps.sh``) by intercepting the CDN URL, and every other request off the
local server is blocked, so the test runs offline. A screenshot of every page is written to
``_build/screenshots/`` for people to look at.

Environment: ``NOISY_HTML_DIR`` (default ``_build/html``), ``NOISY_SCREENSHOT_DIR`` (default
``_build/screenshots``), ``NOISY_BOOK_ROOT`` (the book's source, default the repository),
``CHROMIUM`` (default ``/usr/bin/chromium``).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

pytestmark = pytest.mark.built_book

ROOT = Path(__file__).resolve().parent.parent
BOOK_ROOT = Path(os.environ.get("NOISY_BOOK_ROOT", ROOT))
HTML_DIR = Path(os.environ.get("NOISY_HTML_DIR", BOOK_ROOT / "_build" / "html"))
SCREENSHOT_DIR = Path(os.environ.get("NOISY_SCREENSHOT_DIR", BOOK_ROOT / "_build" / "screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MATHJAX_DIR = ROOT / "tools" / "node_modules" / "mathjax"
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3(?:\.[0-9.]+)?/([^?#]*)")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Known harmless console error of every Jupyter Book 1 page (see DESIGN.md, Known pitfalls).
HARMLESS_PAGE_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}


def built_pages() -> list[str]:
    if not HTML_DIR.is_dir():
        return []
    return sorted(
        p.relative_to(HTML_DIR).as_posix()
        for p in HTML_DIR.rglob("*.html")
        if not SKIP_DIRS.intersection(p.relative_to(HTML_DIR).parts[:-1])
        and not any(part.startswith(".") for part in p.relative_to(HTML_DIR).parts)
    )


PAGES = built_pages()


def book_config() -> dict:
    return yaml.safe_load((BOOK_ROOT / "_config.yml").read_text())


def expected_colab_url(page: str) -> str:
    """The Colab link of a chapter page: its paired .ipynb in the configured repository, on main."""
    cfg = book_config()
    repo = cfg["repository"]
    url = repo["url"].rstrip("/")
    assert repo.get("branch") == "main", f"_config.yml repository.branch is {repo.get('branch')!r}, not 'main'"
    gh = urlparse(url)
    assert gh.netloc == "github.com", f"repository.url {url!r} is not on github.com"
    colab = cfg.get("launch_buttons", {}).get("colab_url", "https://colab.research.google.com").rstrip("/")
    prefix = (repo.get("path_to_book") or "").strip("/")
    nb_path = str(Path(page).with_suffix(".ipynb").as_posix())
    if prefix:
        nb_path = f"{prefix}/{nb_path}"
    return f"{colab}/github{gh.path}/blob/main/{nb_path}"


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    if not PAGES:
        pytest.fail(f"no built book in {HTML_DIR}: run `make book` first (or set NOISY_HTML_DIR)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(HTML_DIR)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser_context(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements-test.txt")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run tools/install_test_deps.sh (apt-get install chromium)")
    if not (MATHJAX_DIR / "es5" / "tex-mml-chtml.js").exists():
        pytest.fail(f"{MATHJAX_DIR} is missing: run tools/install_test_deps.sh (npm ci --prefix tools)")
    profile = tempfile.mkdtemp(prefix="noisy-chromium-")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, service_workers="block",
        )
        context.set_default_timeout(60_000)
        context.blocked = []  # external URLs the pages asked for (blocked: the test is offline)

        def route(r):
            url = r.request.url
            if url.startswith(("http://127.0.0.1:", "data:")):
                return r.continue_()
            m = MATHJAX_CDN.match(url)
            if m:
                local = (MATHJAX_DIR / unquote(m.group(1))).resolve()
                if MATHJAX_DIR.resolve() in local.parents and local.is_file():
                    return r.fulfill(path=str(local))
                return r.fulfill(status=404, body=f"not in the local MathJax copy: {m.group(1)}")
            context.blocked.append(url)
            return r.abort()

        context.route("**/*", route)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


# ------------------------------------------------------------------------------ page checks

# Runs in the page once MathJax is done; returns a list of problems (strings).
CHECK_PAGE_JS = r"""
async () => {
  const problems = [];
  const short = (s, n = 120) => (s || "").replace(/\s+/g, " ").trim().slice(0, n);

  // --- math: every .math element typeset, no error nodes, no undefined macros
  const mathEls = Array.from(document.querySelectorAll(".math"));
  for (const el of mathEls) {
    if (!el.querySelector("mjx-container")) problems.push(`formula not typeset: ${short(el.textContent)}`);
  }
  for (const el of document.querySelectorAll("mjx-merror, merror")) {
    problems.push(`MathJax error: ${el.getAttribute("data-mjx-error") || short(el.textContent)}`);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) {
      if (!item.root || !item.root.walkTree) continue;
      item.root.walkTree((node) => {
        if (node.isKind && node.isKind("merror")) {
          problems.push(`MathJax error in ${short(item.math, 80)}`);
        }
        if (node.isKind && node.isKind("mtext") && node.attributes &&
            node.attributes.get("mathcolor") === "red") {
          problems.push(`undefined macro in ${short(item.math, 80)}`);
        }
      });
    }
  }
  // --- raw TeX left in the prose (outside code, outputs that are not math, and rendered math)
  const article = document.querySelector("article, main, body") || document.documentElement;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
    acceptNode(n) {
      const p = n.parentElement;
      if (!p || p.closest("pre, code, script, style, textarea, mjx-container, .highlight, .cell_input, .output, mjx-assistive-mml, .math"))
        return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  const rawTex = /(\$\$[\s\S]+?\$\$)|(\$[^$\s][^$\n]*[\\^_{}][^$\n]*\$)|(\\\([\s\S]+?\\\))|(\\\[[\s\S]+?\\\])|(\\begin\{[a-z*]+\})/;
  // a formula broken across blocks leaves a lone $ before a command, or a command in plain text
  const strayTex = /(\$\\[A-Za-z]+)|(\\(?:frac|alpha|beta|eta|mu|lambda|sigma|Sigma|mathbb|mathcal|operatorname|sum|sqrt|nabla|dots|left|right)(?![A-Za-z]))/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = rawTex.exec(n.textContent) || strayTex.exec(n.textContent);
    if (m) problems.push(`untypeset TeX in text: ${short(m[0], 80)}`);
  }

  // --- images: loaded, non-zero size
  const imgs = Array.from(document.images);
  for (const img of imgs) img.loading = "eager";
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((res) => {
    img.addEventListener("load", res, { once: true });
    img.addEventListener("error", res, { once: true });
    setTimeout(res, 15000);
  })));
  for (const img of imgs) {
    if (!img.complete || img.naturalWidth === 0 || img.naturalHeight === 0) {
      problems.push(`image did not load: ${img.getAttribute("src") && img.getAttribute("src").slice(0, 100)} (alt=${short(img.alt, 40)})`);
    }
  }

  // --- error outputs
  const allowed = (el) => el.closest(".tag_raises-exception");
  for (const el of document.querySelectorAll(".output.traceback, .output.error, .output_error, div.traceback")) {
    if (!allowed(el)) problems.push(`error output: ${short(el.textContent, 200)}`);
  }
  for (const el of document.querySelectorAll(".output.stderr, .output_stderr, .stderr")) {
    if (allowed(el)) continue;
    if (/Traceback|Error|Exception/.test(el.textContent)) problems.push(`stderr output with an error: ${short(el.textContent, 200)}`);
  }
  // sphinx/docutils system messages that slipped into the page
  for (const el of document.querySelectorAll(".system-message, .problematic")) {
    problems.push(`docutils error in the page: ${short(el.textContent, 200)}`);
  }

  // --- widgets: explorers must be static figures
  for (const el of document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')) {
    const cell = el.closest(".cell");
    const id = (() => { try { return JSON.parse(el.textContent).model_id; } catch (e) { return "?"; } })();
    problems.push(`interactive widget on a static page (model ${id})${cell ? ": " + short((cell.querySelector(".cell_input") || cell).textContent, 100) : ""}`);
  }
  if (/Loading widget\.\.\./.test(document.body.innerText)) problems.push('page shows "Loading widget..."');
  return problems;
}
"""

# Runs after CHECK_PAGE_JS: content wider than the column it sits in. At 1280 px (`desktop`) a
# display equation must fit and a code line must not scroll inside its cell; on a phone an
# equation or a code cell may scroll inside its own box, but nothing may push the page sideways.
OVERFLOW_JS = r"""
(desktop) => {
  const problems = [];
  const short = (s, n = 90) => (s || "").replace(/\s+/g, " ").trim().slice(0, n);
  const column = document.querySelector("article.bd-article, main article, article, main") || document.body;
  const right = column.getBoundingClientRect().right;
  const slack = 2;
  for (const el of document.querySelectorAll('mjx-container[display="true"]')) {
    const inner = el.querySelector("mjx-math") || el;
    const box = el.getBoundingClientRect(), content = inner.getBoundingClientRect();
    // at 1280 px an equation must fit; on a phone it may scroll inside its own box, never stick out
    const scrolls = ["auto", "scroll"].includes(getComputedStyle(el).overflowX) && box.right <= right + slack;
    const wide = content.width > box.width + slack || el.scrollWidth > el.clientWidth + slack;
    if ((desktop && wide) || (!desktop && !scrolls && (wide || content.right > right + slack))) {
      const tex = el.closest(".math") ? el.closest(".math").getAttribute("data-tex") || "" : "";
      problems.push(`display math wider than its column (${Math.round(content.width)} > ${Math.round(box.width)} px): ${short(tex || el.textContent)}`);
    }
  }
  for (const img of document.querySelectorAll("img")) {
    const box = img.getBoundingClientRect();
    if (box.width > 0 && box.right > right + slack) {
      problems.push(`figure wider than its column: ${(img.getAttribute("src") || "").slice(0, 80)}`);
    }
  }
  if (desktop) {
    for (const pre of document.querySelectorAll(".cell_input pre, div.highlight pre")) {
      if (pre.scrollWidth > pre.clientWidth + slack) {
        const longest = pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
        problems.push(`code line wider than its cell (${longest.length} characters): ${short(longest, 70)}`);
      }
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth + slack) {
    problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${window.innerWidth} px)`);
  }
  return problems;
}
"""

PHONE = {"width": 390, "height": 844}

VISIBLE_JS = r"""
(sol) => {
  const parts = Array.from(sol.children).filter((c) => !c.matches(".admonition-title, summary, button"));
  if (sol.tagName === "DETAILS") return sol.open;
  return parts.some((c) => c.getClientRects().length > 0 && getComputedStyle(c).visibility !== "hidden");
}
"""


def wait_for_mathjax(page) -> None:
    if not page.locator("script[src*='mathjax']").count():
        return
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
    page.evaluate("() => MathJax.startup.promise.then(() => true)")


def check_solutions(page) -> list[str]:
    """Every solution starts collapsed and opens when its toggle is clicked."""
    problems = []
    solutions = page.locator(".solution")
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        name = sol.get_attribute("id") or f"solution {i + 1}"
        if sol.evaluate(VISIBLE_JS):
            problems.append(f"{name}: solution is shown before it is clicked (use `:class: dropdown`)")
            continue
        toggle = sol.locator("summary, .admonition-title").first
        if not toggle.count():
            problems.append(f"{name}: solution is hidden but has no toggle to open it")
            continue
        # click where a reader clicks: the start of the title ("Solution to"), not its link
        box = toggle.bounding_box()
        toggle.click(position={"x": 8, "y": box["height"] / 2 if box else 8})
        try:
            page.wait_for_function(VISIBLE_JS, arg=sol.element_handle(), timeout=5_000)
        except Exception:
            problems.append(f"{name}: clicking the toggle does not show the solution")
    return problems


def check_colab_link(page, name: str) -> list[str]:
    """A chapter (a page built from a notebook) links to its own .ipynb on Colab."""
    source = BOOK_ROOT / Path(name).with_suffix(".md")
    if not (name.startswith("chapters/") and source.exists()):
        return []
    problems = []
    want = expected_colab_url(name)
    if not (BOOK_ROOT / Path(name).with_suffix(".ipynb")).exists():
        problems.append(f"the paired notebook {Path(name).with_suffix('.ipynb')} does not exist")
    hrefs = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(e => e.href)")
    if not hrefs:
        problems.append(f"no Colab link (expected {want})")
    for href in hrefs:
        if href != want:
            problems.append(f"Colab link {href} is not {want}")
    return problems


@pytest.mark.parametrize("name", PAGES or ["(no built book)"])
def test_page_in_browser(browser_context, server, name):
    redirect = re.search(r'<meta http-equiv="refresh" content="[^"]*url=([^"]+)"', (HTML_DIR / name).read_text(), re.I)
    if redirect:  # index.html of a Jupyter Book only redirects to the root page
        target = (Path(name).parent / redirect.group(1).split("#")[0]).as_posix()
        assert target in PAGES, f"{name} redirects to {target}, which was not built"
        return
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"script error: {e}") if not any(h in str(e) for h in HARMLESS_PAGE_ERRORS) else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 and r.url.startswith(server) else None)
    try:
        page.goto(server + name, wait_until="load")
        wait_for_mathjax(page)
        problems = page.evaluate(CHECK_PAGE_JS)
        problems += [f"at 1280 px: {p}" for p in page.evaluate(OVERFLOW_JS, True)]
        problems += check_colab_link(page, name)
        shot = SCREENSHOT_DIR / (name.replace("/", "__").removesuffix(".html") + ".png")
        page.screenshot(path=str(shot), full_page=True)
        problems += check_solutions(page)
        problems += errors
    finally:
        page.close()
    assert not problems, f"{name} breaks in the browser:\n  " + "\n  ".join(dict.fromkeys(problems))


@pytest.mark.parametrize("name", [p for p in PAGES if p.startswith("chapters/")] or ["(no built book)"])
def test_page_fits_a_phone(browser_context, server, name):
    """At a phone's width nothing but a code cell may scroll sideways: math and figures fit."""
    page = browser_context.new_page()
    page.set_viewport_size(PHONE)
    try:
        page.goto(server + name, wait_until="load")
        wait_for_mathjax(page)
        problems = page.evaluate(OVERFLOW_JS, False)
    finally:
        page.close()
    assert not problems, f"{name} at {PHONE['width']} px:\n  " + "\n  ".join(dict.fromkeys(problems))


@pytest.mark.skipif(not PAGES, reason="no built book")
def test_search_finds_a_term(browser_context, server):
    """The built book's search (Sphinx's index) finds the chapter that is about a term."""
    page = browser_context.new_page()
    try:
        page.goto(server + "search.html?q=martingale", wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('#search-results li, ul.search li').length > 0",
                               timeout=30_000)
        hrefs = page.eval_on_selector_all("#search-results li a, ul.search li a", "els => els.map(e => e.href)")
    finally:
        page.close()
    assert any("03-martingales" in h for h in hrefs), f"searching 'martingale' did not find chapter 3: {hrefs[:10]}"


FIXTURE = Path(__file__).resolve().parent / "browser_fixture"


def test_checks_catch_a_broken_page(browser_context):
    """Each rule fires on tests/browser_fixture/broken.html (no book build needed)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(FIXTURE)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    page = browser_context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{httpd.server_port}/broken.html", wait_until="load")
        wait_for_mathjax(page)
        problems = "\n".join(page.evaluate(CHECK_PAGE_JS) + check_solutions(page) + page.evaluate(OVERFLOW_JS, True))
    finally:
        page.close()
        httpd.shutdown()
        httpd.server_close()
    for expected in ("undefined macro in \\nosuchmacro", "MathJax error", "untypeset TeX in text: $\\alpha_t$",
                     "untypeset TeX in text: $\\operatorname", "image did not load: missing.png", "error output: ValueError: boom",
                     "stderr output with an error", "interactive widget on a static page (model abc)",
                     "open-solution: solution is shown before it is clicked", "display math wider than its column",
                     "code line wider than its cell", "figure wider than its column"):
        assert expected in problems, f"the check for {expected!r} did not fire; got:\n{problems}"
    assert "shown on purpose" not in problems  # cells tagged raises-exception may show a traceback
    assert "\\E[x]" not in problems  # the book's macros are defined
