# Sourced by deploy/*.sh: makes .venv with Python 3.11+ and installs the project
# with the given extra (embedded, test). The install is skipped while pyproject.toml
# is unchanged since the last one, so the commands start in a second.
ensure_venv() {
  local extra="$1"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "sobat-matrix needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-$extra"
  local digest
  digest=$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    return 0
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    --editable ".[$extra]"
  echo "$digest" > "$stamp"
}
