#!/usr/bin/env bash
# Regenerate the lock files (exact versions + hashes) from pyproject.toml's dependencies:
#   requirements.lock         the project, dev and ci extras (what pipeline.sh always installs)
#   requirements-images.lock  the "images" extra (torch, torchvision), constrained to agree with
#                             requirements.lock; installed when an image dataset is used
# Run after changing dependencies; commit the result. pipeline.sh re-installs when one changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==0.13.8"
compile() {
  "$tools/venv/bin/uv" pip compile --generate-hashes --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --quiet --custom-compile-command "bash .ci/lock.sh" "$@"
}
compile "$root/pyproject.toml" --extra dev --extra ci -o "$root/requirements.lock"
# Only the packages the core lock lacks, at versions compatible with it.
python3 - "$root/pyproject.toml" > "$tools/images.in" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["images"]))
PY
compile "$tools/images.in" -c "$root/requirements.lock" -o "$tools/images.lock"
python3 - "$root/requirements.lock" "$tools/images.lock" > "$root/requirements-images.lock" <<'PY'
import re, sys
core = set(re.findall(r"^([A-Za-z0-9_.-]+)==", open(sys.argv[1]).read(), re.M))
out, keep = [], True
for line in open(sys.argv[2]):
    name = re.match(r"^([A-Za-z0-9_.-]+)==", line)
    if name:
        keep = name.group(1) not in core
    elif not line.startswith((" ", "\t")):
        keep = True
    if keep:
        out.append(line)
sys.stdout.write("".join(out))
PY
echo "wrote requirements.lock and requirements-images.lock" >&2
