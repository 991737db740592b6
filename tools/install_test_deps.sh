#!/bin/sh
# Install what the browser test of the built book needs, without any download at test time:
#   * Chromium from Debian (`apt-get install chromium`) when /usr/bin/chromium is missing;
#   * an offline copy of MathJax 3 from npm into tools/node_modules (pinned by tools/package-lock.json).
# Playwright for Python comes from requirements-test.txt; it drives /usr/bin/chromium
# (never `playwright install`). Idempotent: does nothing when everything is present.
set -eu
cd "$(dirname "$0")"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    echo "install_test_deps: installing chromium (apt)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
fi

if [ ! -f node_modules/mathjax/es5/tex-mml-chtml.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install_test_deps: installing MathJax (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
fi
