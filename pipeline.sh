#!/usr/bin/env bash
# The five-stage pipeline: data_creation -> data_preprocessing -> model_preparation ->
# model_testing -> model_registration, each a separate Python process, one MLflow parent run
# around them. The LAST line on stdout is `Model test accuracy is: 0.xxx`; logs go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCK="$ROOT/requirements.lock"
IMAGES_LOCK="$ROOT/requirements-images.lock"
DEV_LOCK="$ROOT/requirements-dev.lock"
IMAGE_DATASETS="cifar10 fashion_mnist"
VENV="${MLOPS_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
EXIT_GATE_REJECTED=3  # from lab1/core/errors.py
EXIT_IN_USE=3  # --clean refused: the store is in use (lab1/core/workspace.py)

usage() {
  cat <<'EOF'
Usage: bash pipeline.sh [OPTIONS]

Runs the five stages as separate processes and prints, as the LAST stdout line,
  Model test accuracy is: 0.929
The first run creates .venv from requirements.lock with uv (about 10-30 s, needs PyPI); later
runs reuse it and work offline (it is rebuilt only when the lock file changes).

Options:
  --dataset NAME          temperature (default, params.yaml's `dataset`), fashion_mnist or
                          cifar10; an image dataset installs requirements-images.lock (torch,
                          ~1.5 min and ~5 GB, once)
  -S, --set SEC.KEY=VAL   override a parameter, e.g. -S model_preparation.estimator=random_forest
                          (repeatable; the same syntax as `dvc exp run -S`)
  --stage NAME            run one stage only (data_creation, data_preprocessing,
                          model_preparation, model_testing, model_registration); its stdout is
                          passed through. Attaches to the parent run opened by --begin, if any.
  --begin                 open the MLflow parent run for stages run one by one (Jenkins)
  --end STATUS            close that parent run: FINISHED, FAILED or KILLED
  --clean                 start afresh: remove what runs made in this checkout (data/, models/,
                          reports/, .mlops/ and the embedded MLflow store .mlflow/; a tracking
                          server is not touched); .venv stays. Waits for a running pipeline.
  --setup [--images] [--dev]
                          only create/refresh the environment (--images: add torch;
                          --dev: add the test and lint tools of requirements-dev.lock)
  -h, --help              show this help

Environment:
  MLFLOW_TRACKING_URI     tracking server (default: embedded SQLite store in .mlflow/)
  MLOPS_VENV              use this existing Python environment as is (no install)
  MLOPS_OVERRIDES         extra overrides, one section.key=value per line (before -S options)

Exit codes: 0 ok; 1 a stage failed; 2 bad command line; 3 the quality gate rejected the model
(the accuracy line is still printed; the `champion` alias did not move), or --clean refused (an
MLflow UI or a model service uses the store; nothing was removed).

One pipeline runs per checkout at a time: a second one waits for the first, and says so.
Where the champion came from (data, code, params, metrics, runs; --reproduce re-runs it):
  .venv/bin/python -m lab1.lineage [models:/NAME/VERSION] [--json] [--reproduce]
EOF
}

log() { printf '%s pipeline.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '%s ERROR pipeline.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 2; }
# Ctrl-C or SIGTERM before any stage runs: nothing to stop or record yet (replaced once there is).
trap 'log "interrupted"; exit 130' INT
trap 'log "interrupted"; exit 143' TERM

# --- command line ----------------------------------------------------------------------------
PASS=()       # options passed on to every Python entry point
# Overrides from the environment, one section.key=value per line (how Jenkins passes its
# PARAMS_OVERRIDES text parameter). Command-line -S options come later and win.
while IFS= read -r override; do
  override="$(printf '%s' "$override" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')"
  [ -n "$override" ] && PASS+=(-S "$override")
done <<< "${MLOPS_OVERRIDES:-}"
STAGE=""
MODE="all"
END_STATUS=""
IMAGES=no
DEV=no
wants_images() { case " $IMAGE_DATASETS " in *" $1 "*) IMAGES=yes ;; esac; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dataset) [ $# -ge 2 ] || die "--dataset needs a name"; PASS+=(--dataset "$2"); wants_images "$2"; shift 2 ;;
    --dataset=*) PASS+=(--dataset "${1#*=}"); wants_images "${1#*=}"; shift ;;
    -S|--set) [ $# -ge 2 ] || die "$1 needs SECTION.KEY=VALUE"; PASS+=(-S "$2")
              case "$2" in dataset=*) wants_images "${2#dataset=}" ;; esac; shift 2 ;;
    --images) IMAGES=yes; shift ;;
    --dev) DEV=yes; shift ;;
    --stage) [ $# -ge 2 ] || die "--stage needs a name"; STAGE="$2"; MODE="stage"; shift 2 ;;
    --stage=*) STAGE="${1#*=}"; MODE="stage"; shift ;;
    --begin) MODE="begin"; shift ;;
    --end) [ $# -ge 2 ] || die "--end needs a status"; MODE="end"; END_STATUS="$2"; shift 2 ;;
    --setup) MODE="setup"; shift ;;
    --clean) MODE="clean"; shift ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

# --- environment -----------------------------------------------------------------------------
# The venv is created with uv (pinned below, installed once by pip into .uv/) from the hash-pinned
# lock, and rebuilt only when the lock's hash differs from the one recorded at the last successful
# install, so a second run needs no network. The image lock (torch) is installed with pip: uv
# would fetch torch's CUDA build from PyPI where pip takes the wheel a local index may hold.
UV_VERSION=0.13.9
UV="$ROOT/.uv/$UV_VERSION/bin/uv"

ensure_uv() {
  [ -x "$UV" ] && return
  command -v python3 >/dev/null || die "python3 not found; install Python 3.11"
  log "installing uv $UV_VERSION into .uv/ (once)"
  python3 -m pip install --quiet --disable-pip-version-check --target "$ROOT/.uv/$UV_VERSION" \
    "uv==$UV_VERSION" >&2
  [ -x "$UV" ] || die "could not install uv $UV_VERSION with pip"
}

with_progress() {  # with_progress WHAT COMMAND...: run COMMAND, saying every 10 s that it runs
  local what="$1" beat rc=0 started=$SECONDS
  shift
  # The heartbeat stops with this script (kill -0 $$), even when an interrupt ends it early,
  # and takes its sleep along (a sleep left behind would hold stderr open for 10 s).
  ( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do
      sleep 10 & nap=$!
      wait "$nap"
      kill -0 $$ 2>/dev/null || exit 0
      log "$what: still working ($((SECONDS - started)) s)"
    done ) &
  beat=$!
  "$@" || rc=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  return "$rc"
}

install_lock() {  # install_lock LOCKFILE: pinned, hash-checked, no resolver (pip: image lock)
  "$PY" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "$1" >&2
}

bootstrap() {
  if [ -n "${MLOPS_VENV:-}" ]; then
    [ -x "$PY" ] || die "MLOPS_VENV=$MLOPS_VENV has no bin/python"
    return
  fi
  local want stamp="$VENV/.lock.sha256"
  want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
  if ! [ -x "$PY" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    ensure_uv
    log "creating $VENV from requirements.lock with uv (first run or lock changed)"
    rm -rf "$VENV"
    # --seed: pip inside the venv, for the image lock.
    "$UV" venv --quiet --seed --no-python-downloads --python python3 "$VENV" >&2
    with_progress "installing requirements.lock" "$UV" pip install --quiet --python "$PY" \
      --require-hashes --no-deps --compile-bytecode -r "$LOCK" >&2
    # Make the project importable as `lab1...` from the venv, so that
    # `.venv/bin/python lab1/data_creation.py` works from any directory.
    local site
    site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$ROOT" > "$site/mlops_labs.pth"
    printf '%s\n' "$want" > "$stamp"
    log "environment ready"
  fi
  [ "$IMAGES" = no ] || add_lock "$IMAGES_LOCK" "torch (once; ~1.5 min, ~5 GB)" pip
  [ "$DEV" = no ] || add_lock "$DEV_LOCK" "the test and lint tools" uv
}

add_lock() {  # add_lock LOCKFILE WHAT pip|uv: install an extra lock once (again when it changes)
  local want stamp="$VENV/.$(basename "$1" .lock).sha256"
  want="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "adding $2 to $VENV from $(basename "$1")"
    if [ "$3" = uv ]; then
      ensure_uv
      with_progress "installing $(basename "$1")" "$UV" pip install --quiet --python "$PY" \
        --require-hashes --no-deps --compile-bytecode -r "$1" >&2
    else
      with_progress "installing $(basename "$1")" install_lock "$1"
    fi
    printf '%s\n' "$want" > "$stamp"
  fi
}

bootstrap
# The stages import `lab1` from this checkout, whichever environment runs them.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"

# A short check runs to its end even on Ctrl-C: an interpreter interrupted while it starts up
# prints a traceback of its own ("init_import_site"), which no code of ours can catch. The signal
# is not lost: this script's trap acts on it as soon as the check returns.
check() { ( trap '' INT; exec "$PY" "$@" ); }

# A command substitution, not `< <(...)`: bash waits for it before acting on a Ctrl-C, where a
# process substitution would be left writing into a closed pipe (BrokenPipeError).
stage_list="$(check -m lab1.core.stages)"
mapfile -t STAGES <<< "$stage_list"

run_stage() {  # run_stage NAME [stdout: quiet (dropped) | pass]
  local name="$1" launch=()
  # The CNN trains data-parallel under torchrun (lab1/core/distributed.py) when asked to.
  if [ "$name" = model_preparation ] && [ "$PROCESSES" -gt 1 ]; then
    launch=(-m lab1.core.distributed --standalone --nproc-per-node "$PROCESSES")
  fi
  if [ "${2:-pass}" = quiet ]; then
    "$PY" "${launch[@]}" -m "lab1.$name" "${PASS[@]}" >/dev/null &
  else
    "$PY" "${launch[@]}" -m "lab1.$name" "${PASS[@]}" &
  fi
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# Every option and parameter is checked before any work: one line, and exit 2 for a mistake on
# the command line (1 for one in params.yaml).
case "$MODE" in setup|end|clean) ;; *) check -m lab1.core.cli "${PASS[@]}" || exit $? ;; esac
# model_preparation.cnn.processes (image datasets): checked against the GPUs here, before any work.
case "$MODE" in all|stage) PROCESSES="$(check -m lab1.core.distributed --processes "${PASS[@]}")" || exit $? ;; esac

lock_workspace() {  # one pipeline per checkout (lab1/core/workspace.py): held on fd 9 until exit
  local lock="$ROOT/.mlops/workspace.lock"
  mkdir -p "$ROOT/.mlops"
  exec 9>>"$lock"
  if ! flock -n 9; then
    log "another pipeline is running in this workspace: $(cat "$lock" 2>/dev/null); waiting for it" \
      "to finish (one pipeline per checkout: they share data/, models/ and reports/)"
    flock 9
  fi
  printf 'pipeline.sh (pid %s, since %s)' $$ "$(date +%H:%M:%S)" > "$lock"
  export MLOPS_WORKSPACE_LOCK_FD=9
}

case "$MODE" in
  setup) exit 0 ;;
  clean)
    lock_workspace
    # An MLflow UI or a model service on the embedded store would go on showing runs and serving
    # a version that no longer exist: name them (pid, port) and leave the store alone. A refusal
    # has its own code (3, as the gate's): nothing failed, and a script can tell.
    used=0
    [ ! -d "$ROOT/.mlflow" ] || "$PY" -m lab1.core.workspace --users-of "$ROOT/.mlflow" || used=$?
    if [ "$used" -eq "$EXIT_IN_USE" ]; then
      log "stop them first (kill PID), then run --clean again; nothing was removed"
      exit "$EXIT_IN_USE"
    fi
    [ "$used" -eq 0 ] || exit 1
    for made in data models reports .mlflow .mlops; do
      if [ -e "$ROOT/$made" ]; then rm -rf "${ROOT:?}/$made"; log "removed $made/"; fi
    done
    [ -z "${MLFLOW_TRACKING_URI:-}" ] || log "the tracking server of MLFLOW_TRACKING_URI is not touched"
    exit 0
    ;;
  begin) exec "$PY" -m lab1.pipeline_run begin --context "${PASS[@]}" >/dev/null ;;
  end) exec "$PY" -m lab1.pipeline_run end --status "$END_STATUS" ;;
  stage)
    check -m lab1.core.stages --check "$STAGE" || exit 2
    CHILD=""
    trap '[ -n "$CHILD" ] && kill -TERM "$CHILD" 2>/dev/null; wait; exit 143' TERM
    rc=0
    run_stage "$STAGE" || rc=$?
    # After the last stage, end with the accuracy line as the full pipeline does.
    if [ "$STAGE" = "${STAGES[-1]}" ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq "$EXIT_GATE_REJECTED" ]; }; then
      "$PY" -m lab1.core.report
    fi
    exit "$rc"
    ;;
esac

# --- the whole pipeline ----------------------------------------------------------------------
# One MLflow parent run per execution (lab1/core/tracking.py): begun here, passed to every stage
# (MLOPS_PARENT_RUN_ID; each records its own child run), ended here with the outcome.
now() { local t="${EPOCHREALTIME:-$(date +%s)}"; printf '%s' "${t/,/.}"; }  # bash < 5: seconds
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# One pipeline per checkout (they would share data/, models/ and reports/): this shell and every
# stage keep the lock's fd open until they exit; a second pipeline waits here.
lock_workspace
# Ctrl-C / SIGTERM: stop the running stage (it ends its own run KILLED), end the parent run
# KILLED, and exit 130 (Ctrl-C) or 143 (SIGTERM). A signal to the whole process group (Jenkins'
# abort, `kill -- -PGID`) reaches the stage too: it ends its run by itself.
CHILD=""
PARENT_RUN=""
on_signal() {
  trap - INT TERM
  log "interrupted; stopping"
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" || true; fi
  if [ -n "$PARENT_RUN" ]; then
    ( trap '' INT TERM; exec "$PY" -m lab1.pipeline_run end "$PARENT_RUN" --status KILLED ) || true
  fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
# Under `mlflow run` (MLproject's main entry) MLFLOW_RUN_ID names the run MLflow made for this
# pipeline: begin adopts it as the parent run; the stages, without it, record their own runs.
# It runs to its end even on Ctrl-C (a run begun must reach PARENT_RUN to be ended); bash acts
# on the signal as soon as it returns.
PARENT_RUN="$(trap '' INT TERM; exec "$PY" -m lab1.pipeline_run begin --owner-pid $$ "${PASS[@]}")" \
  || exit 1
unset MLFLOW_RUN_ID
export MLOPS_PARENT_RUN_ID="$PARENT_RUN"

finish() {  # finish STATUS EXIT_CODE: end the parent run with the outcome, exit
  local rc="$2"
  "$PY" -m lab1.pipeline_run end "$PARENT_RUN" --status "$1" || rc=1
  exit "$rc"
}


started="$(now)"
k=0
for stage in "${STAGES[@]}"; do
  k=$((k + 1))
  log "[$k/${#STAGES[@]}] $stage"
  stage_started="$(now)"
  rc=0
  # The accuracy line is printed once, last, from the report: the stages' own stdout is dropped.
  run_stage "$stage" quiet || rc=$?
  log "[$k/${#STAGES[@]}] stage $stage: exit $rc after $(since "$stage_started") s"
  if [ "$rc" -eq "$EXIT_GATE_REJECTED" ] && [ "$stage" = model_registration ]; then
    log "the quality gate rejected the model; champion unchanged"
    "$PY" -m lab1.core.report --summary || true
    "$PY" -m lab1.core.report
    finish FINISHED "$EXIT_GATE_REJECTED"
  elif [ "$rc" -ne 0 ]; then
    log "stage $stage failed (exit $rc)"
    finish FAILED 1
  fi
done
log "all stages done in $(since "$started") s"
"$PY" -m lab1.core.report --summary || true
"$PY" -m lab1.core.report
finish FINISHED 0
