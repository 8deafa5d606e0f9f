#!/usr/bin/env bash
# Create ./.venv (once) and install fourm into it with its dev extras.
#
# torch is installed first, pinned to 2.13.0: on this project's machines that resolves to the CPU
# wheel kept on local disk; an unpinned torch would pull a multi-GB CUDA build. Extra pip arguments
# for the torch install (e.g. another index for a CPU or CUDA build) go in $FOURM_TORCH_PIP_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch 2.13.0"
  # shellcheck disable=SC2086
  python -m pip install -q torch==2.13.0 ${FOURM_TORCH_PIP_ARGS:-}
fi
stamp=.venv/.fourm-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing fourm and its dependencies"
  python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
