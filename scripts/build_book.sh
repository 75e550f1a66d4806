#!/usr/bin/env bash
# Build the HTML book: set up .venv (first run only), execute every notebook (cached in
# _build/.jupyter_cache, so unchanged notebooks are not re-run) and print where index.html is.
#
# Usage: bash scripts/build_book.sh [--clean]     --clean: drop _build first (re-executes everything)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup_env.sh
if [ "${1:-}" = "--clean" ]; then
    rm -rf _build
fi
# The execution cache keys on each notebook's code only; the notebooks also run the
# library, so any change under src/ invalidates the cache.
library_hash="$(find src -name '*.py' -type f | sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ "$(cat _build/.marlpg-library-hash 2>/dev/null || true)" != "$library_hash" ]; then
    rm -rf _build/.jupyter_cache
fi
mkdir -p _build
echo "$library_hash" > _build/.marlpg-library-hash
start=$(date +%s)
# -W: warnings are errors; -n: nitpicky cross-references; --keep-going: report every problem.
.venv/bin/jupyter-book build . -W -n --keep-going
echo
echo "[book] built in $(( $(date +%s) - start )) s (each notebook's execution time: the \"Executed notebook in\" lines above)"
echo "[book] open: $repo_root/_build/html/index.html"
