#!/usr/bin/env bash
# Build the HTML book: set up .venv (first run only), execute every notebook (cached in
# _build/.jupyter_cache, so unchanged notebooks are not re-run) and print where index.html is.
#
# Usage: bash scripts/build_book.sh [--clean]     --clean: drop _build first (re-executes everything)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup_env.sh
# torch's idle threads spin for less time, so that a busy machine does not slow its work many times over
# (marlpg.core.threads); an explicit setting is kept.
export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}"
if [ "${1:-}" = "--clean" ]; then
    rm -rf _build
fi
# The execution cache keys on each notebook's code only; the notebooks also run the
# library and read MARLPG_BUDGET, so any change under src/ or of the budget invalidates the cache.
library_hash="$( (find src -name '*.py' -type f | sort | xargs sha256sum; echo "budget=${MARLPG_BUDGET:-full}") | sha256sum | cut -d' ' -f1)"
if [ "$(cat _build/.marlpg-library-hash 2>/dev/null || true)" != "$library_hash" ]; then
    rm -rf _build/.jupyter_cache
fi
mkdir -p _build
echo "$library_hash" > _build/.marlpg-library-hash
start=$(date +%s)
# -W: warnings are errors; -n: nitpicky cross-references; --keep-going: report every problem.
# The log is kept in _build/book.log (a failed build's report stays there).
set +e
.venv/bin/jupyter-book build . -W -n --keep-going 2>&1 | tee _build/book.log
status=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ]; then
    echo "[book] build FAILED after $elapsed s (log: _build/book.log)" >&2
    exit "$status"
fi
echo
echo "[book] execution time of each notebook (limit: 180 s on a CPU; also in the book's build report):"
# The limit is the course's budget on a 2-core CPU. A slower or busier machine can exceed it with nothing
# wrong, so by default an excess is reported, not fatal; MARLPG_STRICT_TIMES=1 makes it fail the command.
if ! .venv/bin/python scripts/notebook_times.py --cache _build/.jupyter_cache --limit 180; then
    if [ "${MARLPG_STRICT_TIMES:-0}" = 1 ]; then
        exit 1
    fi
    echo "[book] warning: a notebook exceeded 180 s or was not executed (see above); MARLPG_STRICT_TIMES=1 makes this fatal" >&2
fi
echo "[book] built in $elapsed s"
echo "[book] open: $repo_root/_build/html/index.html"
echo "[book] student edition (no solutions, no hidden tests): bash scripts/build_student_edition.sh"
