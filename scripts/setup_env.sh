#!/usr/bin/env bash
# Create (or refresh) the course's virtual environment in .venv and install
# everything the book and the tests need. Idempotent: a stamp file records the
# hash of the dependency files, so a second run with nothing changed is instant.
#
# Usage: source scripts/setup_env.sh   (or: bash scripts/setup_env.sh)
# Environment: PYTHON (default python3.11, else python3), VENV (default .venv)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

python_bin="${PYTHON:-$(command -v python3.11 || command -v python3)}"
venv="${VENV:-$repo_root/.venv}"

"$python_bin" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"Python >= 3.10 is required (3.11 recommended); found {sys.version.split()[0]}")
PY

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment at $venv with $python_bin"
    if ! "$python_bin" -m venv "$venv"; then
        # Debian's system Python ships venv separately.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "[setup] installing Debian's python3-venv"
            apt-get update -qq && apt-get install -y -qq python3-venv
            rm -rf "$venv"
            "$python_bin" -m venv "$venv"
        else
            echo "[setup] '$python_bin -m venv' failed: install your distribution's venv package (Debian: python3-venv)" >&2
            exit 1
        fi
    fi
fi

# The autograder runs each submission's kernel inside bubblewrap (Debian package).
if ! command -v bwrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[setup] installing Debian's bubblewrap (the autograder's sandbox)"
        apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "[setup] bubblewrap (bwrap) is missing: the autograder will refuse to grade until it is installed" >&2
    fi
fi

# The browser test (tests/test_browser.py) opens the built book in Debian's headless Chromium,
# driven by Playwright (requirements.txt) through executable_path: no browser download.
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "[setup] installing Debian's chromium (the browser test's headless browser)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "[setup] chromium is missing: tests/test_browser.py will fail until it is installed (Debian: apt-get install chromium)" >&2
    fi
fi

stamp="$venv/.marlpg-deps"
want="$(cat requirements.txt benchmarks/requirements.txt pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "[setup] installing dependencies into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # The CPU build of torch 2.13.0 is what the course is tested with; on a
    # machine that cannot get it, requirements.txt's range takes any torch >= 2.1.
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0" \
        || echo "[setup] torch==2.13.0 not available here; requirements.txt will choose a torch"
    "$venv/bin/python" -m pip install --quiet -r requirements.txt
    "$venv/bin/python" -m pip install --quiet --no-deps -e .
    "$venv/bin/python" -m pip install --quiet "ray[rllib]==2.60.0"  # the [ray] extra, at the version the course is tested with
    # The [smax] extra (JaxMARL's SMAX on JAX's CPU backend), with torch held where it is.
    "$venv/bin/python" -m pip install --quiet "jaxmarl==0.2.0" "jax[cpu]==0.10.2" "torch==$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
    # benchmarks/bench_mappo.py compares with BenchMARL (see benchmarks/requirements.txt for the --no-deps).
    "$venv/bin/python" -m pip install --quiet -r benchmarks/requirements.txt
    "$venv/bin/python" -m pip install --quiet --no-deps "benchmarl==1.5.2"
    "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (marlpg)" >/dev/null
    echo "$want" > "$stamp"
else
    echo "[setup] environment at $venv is up to date"
fi
