#!/usr/bin/env bash
# Static checks of the infrastructure code: checkov over terraform/ and the Dockerfiles in docker/.
#
# checkov pins many libraries that conflict with the project's lock, so it gets its own virtualenv,
# .venv-checkov, created here on first use and reused while it holds the pinned version
# (requirements-checkov.txt). Skipped checks live in terraform/.checkov.yaml, each with a reason
# (also listed in terraform/README.md). Exits non-zero on any failed check.
#
#   scripts/checkov.sh            # install if needed, then check
#   scripts/checkov.sh --install  # only make sure the venv is there
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PIN="$(grep -E '^checkov==' requirements-checkov.txt | head -n1 | cut -d= -f3)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

installed_version() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
print(version("checkov"))
PY
}

if [ "$(installed_version || true)" != "$PIN" ]; then
  echo "checkov.sh: installing checkov==$PIN into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # (grep drops the noise of pip find-links entries that do not exist on this machine)
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
[ "$(installed_version)" = "$PIN" ] || { echo "checkov.sh: checkov $PIN is not installed in $VENV" >&2; exit 2; }

if [ "${1:-}" = "--install" ]; then
  exit 0
fi

CHECKOV=("$VENV/bin/checkov" --config-file terraform/.checkov.yaml --compact --quiet --skip-download)
status=0
echo "== checkov: terraform/ =="
# External modules: none are used; --download-external-modules stays off (no network).
"${CHECKOV[@]}" -d terraform --framework terraform || status=1
echo "== checkov: docker/ (Dockerfiles) =="
"${CHECKOV[@]}" -d docker --framework dockerfile || status=1
if [ "$status" -ne 0 ]; then
  echo "checkov.sh: FAILED checks (fix them or skip them with a reason in terraform/.checkov.yaml)" >&2
fi
exit "$status"
