#!/usr/bin/env bash
# Regenerate the lock files (exact versions + hashes) from pyproject.toml:
#   requirements.lock         the runtime dependencies: pipeline, service, MLflow server
#                             (what pipeline.sh always installs and the Docker image installs)
#   requirements-images.lock  the "images" extra (torch, torchvision) minus what
#                             requirements.lock already pins; installed for an image dataset
#   requirements-dev.lock     the "dev" and "ci" extras minus what requirements.lock pins
#                             (pipeline.sh --setup --dev; the test command installs it)
# Each extra is resolved with the runtime lock as a constraint, and images also with the dev set
# (setuptools<81 for jenkins-job-builder), so any combination in one environment agrees.
# Run after changing dependencies; commit the result. pipeline.sh re-installs when a lock changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==0.13.9"  # the version pipeline.sh bootstraps
compile() {
  "$tools/venv/bin/uv" pip compile --generate-hashes --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --quiet --custom-compile-command "bash .ci/lock.sh" "$@"
}
without_core() {  # without_core FULL_LOCK: the entries of FULL_LOCK that requirements.lock lacks
  python3 - "$root/requirements.lock" "$1" <<'PY'
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
}
compile "$root/pyproject.toml" -o "$root/requirements.lock"
python3 - "$root/pyproject.toml" > "$tools/images.in" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["images"]))
PY
# uv keeps the versions an existing output file pins (unless a requirement changed), so seed the
# temporary outputs with the current locks: adding one tool does not upgrade everything else.
cat "$root/requirements.lock" "$root/requirements-dev.lock" > "$tools/dev.lock"
compile "$root/pyproject.toml" --extra dev --extra ci -c "$root/requirements.lock" \
  -o "$tools/dev.lock"
without_core "$tools/dev.lock" > "$root/requirements-dev.lock"
cat "$root/requirements.lock" "$root/requirements-images.lock" > "$tools/images.lock"
compile "$tools/images.in" -c "$root/requirements.lock" -c "$tools/dev.lock" \
  -o "$tools/images.lock"
without_core "$tools/images.lock" > "$root/requirements-images.lock"
echo "wrote requirements.lock, requirements-images.lock and requirements-dev.lock" >&2
