#!/usr/bin/env bash
# Build the student edition of the book: the same book without solutions/ and without hidden tests,
# ready to publish, at _build/student/html. Sets up .venv first if needed. Reuses the execution cache of
# the default build (bash scripts/build_book.sh) when there is one, so notebooks are not run twice.
# Fails, and leaves no book, if any text of a solution or a hidden test reaches the HTML.
#
# Usage: bash scripts/build_student_edition.sh [--out DIR] [--reuse-cache DIR]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup_env.sh
exec .venv/bin/python scripts/student_edition.py "$@"
