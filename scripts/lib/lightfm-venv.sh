# shellcheck shell=bash
# The LightFM 1.17 virtual environment, one recipe for every script that runs LightFM
# (scripts/compare-lightfm.sh, scripts/bench-serve.sh). Source it, then
# `ensure_lightfm_venv VENV REQUIREMENTS [PYTHON]` creates or repairs VENV (idempotent).
#
# lightfm 1.17 is a setup.py sdist that imports numpy at build time: it needs pip < 25.3
# (the legacy build path), setuptools < 70, wheel, and --no-build-isolation.

lightfm_venv_ok() { # VENV
  [ -x "$1/bin/python" ] &&
    "$1/bin/python" -c 'import lightfm, lightfm._lightfm_fast, scipy; assert lightfm.__version__ == "1.17"' \
      >/dev/null 2>&1
}

ensure_lightfm_venv() { # VENV REQUIREMENTS [PYTHON]
  local venv="$1" req="$2" python="${3:-python3}"
  lightfm_venv_ok "$venv" && return 0
  echo ">> setting up the LightFM 1.17 venv in $venv (takes a few minutes)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  local vpip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
  "${vpip[@]}" install "pip<25.3" "setuptools<70" wheel
  grep -v '^lightfm' "$req" | "${vpip[@]}" install -r /dev/stdin
  "${vpip[@]}" install --no-build-isolation "$(grep '^lightfm' "$req")"
  lightfm_venv_ok "$venv" || { echo "error: LightFM venv setup failed ($venv)" >&2; return 1; }
}
