#!/usr/bin/env bash
# Run a command while CPU hogs double the machine's load: one busy process per core, at the same priority,
# stopped when the command ends (however it ends). The README's two commands should pass this way:
#
#   bash scripts/under_load.sh bash scripts/build_book.sh
#   bash scripts/under_load.sh bash scripts/run_tests.sh
#
# Environment: HOGS (default: the number of cores).
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: bash scripts/under_load.sh COMMAND [ARGS...]" >&2
    exit 2
fi
hogs="${HOGS:-$(nproc)}"
if ! [[ "$hogs" =~ ^[0-9]+$ ]]; then
    echo "HOGS must be a whole number of busy processes; got '$hogs'" >&2
    exit 2
fi
pids=()
stop_hogs() { [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for _ in $(seq 1 "$hogs"); do
    ( while :; do :; done ) &
    pids+=("$!")
done
echo "[under_load] $hogs busy process(es) running beside: $*" >&2
start=$(date +%s)
set +e
"$@"
status=$?
set -e
echo "[under_load] finished in $(( $(date +%s) - start )) s with status $status" >&2
exit "$status"
