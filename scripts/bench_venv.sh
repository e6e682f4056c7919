#!/usr/bin/env bash
# Creates .venv-bench (gitignored) with the packages scripts/seed_import.py needs.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-bench"
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "pandas>=2,<3" "pymongo>=4,<5"
echo "$VENV/bin/python"
