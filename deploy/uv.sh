#!/usr/bin/env bash
# uv, which installs the project's Python dependencies exactly as uv.lock pins them: the uv the
# Python already has (python -m uv), else one installed earlier under .work/uv, else one on PATH,
# else it is installed once into .work/uv, a virtualenv of its own. Not with `pip install` into
# the interpreter itself: Debian's python3 refuses that (PEP 668, "externally-managed-
# environment"), and a venv is what it asks for. As root, Debian's python3-venv is installed
# when the interpreter lacks the venv module.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OWN=.work/uv

if "$PYTHON" -m uv --version >/dev/null 2>&1; then exec "$PYTHON" -m uv "$@"; fi
if [ -x "$OWN/bin/uv" ]; then exec "$OWN/bin/uv" "$@"; fi
if command -v uv >/dev/null 2>&1; then exec uv "$@"; fi

echo "[uv] installing uv into $OWN (a venv of $PYTHON)" >&2
if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # python3.11-venv for a python3.11: Debian's package for this interpreter's version.
    venv_package="$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$venv_package" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$venv_package" >/dev/null; }
  else
    echo "[uv] $PYTHON cannot make a venv: install python3-venv (Debian) or uv itself" >&2
    exit 1
  fi
fi
rm -rf "$OWN"
"$PYTHON" -m venv "$OWN"
"$OWN/bin/python" -m pip install --quiet --disable-pip-version-check uv
exec "$OWN/bin/uv" "$@"
