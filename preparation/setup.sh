#!/usr/bin/env bash
# One-time (and idempotent) set-up: virtual environment in .venv, packages, Cython extension.
# Re-running is cheap: packages are reinstalled only when requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# Absolute, so that it still works in the subshell below that changes into src/metaseg.
python="$(cd "$VENV" && pwd)/bin/python"
stamp="$VENV/.requirements-installed"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > "$stamp"
fi
(cd src/metaseg && "$python" metrics_setup.py build_ext --inplace > build.log 2>&1) \
    || { cat src/metaseg/build.log >&2; echo "setup: compiling src/metaseg/metrics.pyx failed" >&2; exit 1; }
"$python" -c "import src.metaseg" || { echo "setup: the Cython extension did not build" >&2; exit 1; }
