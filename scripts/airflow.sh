#!/usr/bin/env bash
# Local Airflow 3.3.2 for the hashtag_recount DAG, in its own virtualenv (.venv-airflow, pinned by
# requirements-airflow.txt; the pipelines themselves run in .venv, see dags/hashtag_recount.py).
#
#   scripts/airflow.sh install      # create/refresh .venv-airflow (idempotent: skipped while the lock is unchanged)
#   scripts/airflow.sh standalone   # UI + scheduler + triggerer on SQLite (AIRFLOW_HOME=.airflow/), foreground
#   scripts/airflow.sh test [DATE]  # airflow dags test hashtag_recount [DATE] against the local stack
#   scripts/airflow.sh pytest [ARGS]# the DAG tests (tests/dags/) with this venv's python
#   scripts/airflow.sh airflow ARGS # any airflow CLI command with the local environment
#
# The local stack's Bigtable emulator must be running for `test` (default localhost:8086, override
# with BIGTABLE_EMULATOR_HOST); the archive defaults to .run/archive (Variable hashtags_archive or
# env AIRFLOW_VAR_HASHTAGS_ARCHIVE).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
LOCK="$ROOT/requirements-airflow.txt"
STAMP="$VENV/.requirements-airflow.sha256"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

lock_hash() { sha256sum "$LOCK" | cut -d' ' -f1; }

install() {
  if [ -x "$VENV/bin/airflow" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(lock_hash)" ]; then
    echo "airflow.sh: $VENV is up to date with requirements-airflow.txt" >&2
    return 0
  fi
  echo "airflow.sh: installing Airflow into $VENV (~3 min, ~2.2 GB)" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
  "$VENV/bin/python" -m pip check >&2 || echo "airflow.sh: WARNING: pip check reported problems" >&2
  lock_hash > "$STAMP"
}

airflow_env() {
  export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
  export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
  export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8090}"
  # The DAG runs the recount with the project's own interpreter (Beam lives there, not here).
  export HASHTAGS_PY_INTERPRETER="${HASHTAGS_PY_INTERPRETER:-$ROOT/.venv/bin/python}"
  export HASHTAGS_PROJECT_ROOT="${HASHTAGS_PROJECT_ROOT:-$ROOT}"
  # The DAG imports hashtags.planning/archive (pure, stdlib only): on Composer they are copied
  # beside the DAG (terraform/composer.tf); here the project root is on the path instead.
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export BIGTABLE_EMULATOR_HOST="${BIGTABLE_EMULATOR_HOST:-localhost:8086}"
  export PATH="$VENV/bin:$PATH"
  mkdir -p "$AIRFLOW_HOME"
}

need_venv() {
  [ -x "$VENV/bin/airflow" ] || { echo "airflow.sh: $VENV missing: run scripts/airflow.sh install" >&2; exit 2; }
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install)
    install
    ;;
  standalone)
    install
    airflow_env
    echo "airflow.sh: Airflow UI at http://127.0.0.1:${AIRFLOW__API__PORT}  (user admin)" >&2
    echo "airflow.sh: admin password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (written on first start)" >&2
    echo "airflow.sh: stop with Ctrl-C (or SIGTERM to this process)" >&2
    exec airflow standalone
    ;;
  test)
    need_venv
    airflow_env
    airflow db migrate >/dev/null
    date="${1:-$(date -u +%Y-%m-%d)}"
    exec airflow dags test hashtag_recount "$date"
    ;;
  pytest)
    need_venv
    airflow_env
    export AIRFLOW_HOME="$(mktemp -d)"
    # Test paths given: run those; otherwise the whole tests/dags folder.
    targets=(tests/dags)
    for a in "$@"; do case "$a" in tests/*) targets=(); break ;; esac; done
    exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${targets[@]}" "$@"
    ;;
  airflow)
    need_venv
    airflow_env
    exec airflow "$@"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
