#!/usr/bin/env bash
# Run every test: the library, the CLI, the benchmarks at a tiny budget, every notebook
# top to bottom, and the book build. Sets up .venv first if needed.
#
# Usage: bash scripts/run_tests.sh [pytest arguments]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup_env.sh
# torch's idle threads spin for less time, so that a busy machine does not slow its work many times over
# (marlpg.core.threads); an explicit setting is kept.
export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}"
exec .venv/bin/python -m pytest "$@"
