#!/usr/bin/env bash
# Create the virtualenv and install the project with every extra the tests and demo need.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
[ -f "$stamp" ] && exit 0
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[dev]"
rm -f "$venv"/.installed-*
touch "$stamp"
