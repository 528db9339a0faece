#!/usr/bin/env bash
# Build the project image (lab3/Dockerfile) tagged with the build's commit and branch:
#   <registry/>mlops-labs:<short sha>   immutable: exactly this commit
#   <registry/>mlops-labs:<branch>      moves with the branch (main, feature-x, ...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'USAGE'
Usage: bash lab3/build.sh [--base IMAGE] [--push] [--dry-run]

Builds lab3/Dockerfile from the repository root and tags it :<short sha> and :<branch>.
  --base IMAGE  the Python base image (default: the Dockerfile's python:3.11.7-slim-bookworm;
              without Docker Hub: the stand-in `bash lab3/podman/base.sh` makes)
  --push      also push both tags to $REGISTRY (refused for uncommitted changes: the sha tag
              must describe exactly what is in the image)
  --dry-run   print the docker commands instead of running them
Environment:
  IMAGE       image name (default: mlops-labs)
  REGISTRY    registry host/namespace to push to, e.g. registry.example.com:5000/team
  BRANCH_NAME branch name when HEAD is detached (Jenkins sets it; also GIT_BRANCH)
  DOCKER      the docker command (default: docker; podman: DOCKER="bash lab3/podman/podman.sh")
USAGE
}

die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 2; }

PUSH=no
DRY=no
BASE=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --base) [ $# -ge 2 ] || die "--base needs an image"; BASE=(--build-arg "PYTHON_IMAGE=$2"); shift ;;
    --push) PUSH=yes ;;
    --dry-run) DRY=yes ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

cd "$ROOT"
git rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git checkout; tags come from git"
commit="$(git rev-parse HEAD)"
sha="$(git rev-parse --short=12 HEAD)"
branch="$(git rev-parse --abbrev-ref HEAD)"
if [ "$branch" = HEAD ]; then  # detached (CI checkouts): ask the CI
  branch="${BRANCH_NAME:-${GIT_BRANCH:-}}"
  branch="${branch#origin/}"
  [ -n "$branch" ] || die "detached HEAD and no BRANCH_NAME/GIT_BRANCH: cannot name the branch tag"
fi
# A Docker tag is [A-Za-z0-9_.-]{1,128} and cannot start with '.' or '-'.
branch_tag="$(printf '%s' "$branch" | tr -c 'A-Za-z0-9_.-' '-' | sed 's/^[.-]*//' | cut -c1-128)"
[ -n "$branch_tag" ] || die "branch name '$branch' leaves no valid tag"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  [ "$PUSH" = no ] || die "uncommitted changes: commit them before --push (tag $sha would lie)"
  sha="$sha-dirty"
fi

name="${IMAGE:-mlops-labs}"
if [ "$PUSH" = yes ]; then
  [ -n "${REGISTRY:-}" ] || die "--push needs REGISTRY (e.g. REGISTRY=registry.example.com/team)"
fi
repo="${REGISTRY:+${REGISTRY%/}/}$name"
read -r -a docker <<< "${DOCKER:-docker}"  # a command with its arguments

run() {
  if [ "$DRY" = yes ]; then printf '%s\n' "$*"; else "$@"; fi
}

run "${docker[@]}" build -f lab3/Dockerfile ${BASE[@]+"${BASE[@]}"} \
  --build-arg "GIT_COMMIT=$commit" --build-arg "GIT_BRANCH=$branch" \
  -t "$repo:$sha" -t "$repo:$branch_tag" .
if [ "$PUSH" = yes ]; then
  run "${docker[@]}" push "$repo:$sha"
  run "${docker[@]}" push "$repo:$branch_tag"
fi
printf 'build.sh: built %s:%s and %s:%s\n' "$repo" "$sha" "$repo" "$branch_tag" >&2
