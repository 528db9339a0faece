#!/usr/bin/env bash
# Regenerate requirements.lock (exact versions + hashes) from pyproject.toml's dependencies.
# Run after changing dependencies; commit the result. pipeline.sh re-installs when it changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==0.13.8"
"$tools/venv/bin/uv" pip compile "$root/pyproject.toml" --extra dev --extra ci --generate-hashes \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet \
  --custom-compile-command "bash .ci/lock.sh" -o "$root/requirements.lock"
echo "wrote $root/requirements.lock" >&2
