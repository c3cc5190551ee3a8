#!/usr/bin/env bash
# One command to check tauda on one CUDA GPU (about 5 minutes, at most 8): `pytest -m cuda` (fp16 + GradScaler
# against fp32, channels_last, SyncBatchNorm, the out-of-memory guard, a threshold update that never waits for the
# GPU), a few paper-size training steps per model and stage with their time and peak memory, and the device-to-host
# synchronisations of one training step. Writes bench/gpu_check.json; `python bench/gpu_check.py --table` prints the
# README table from it. Arguments go to bench/gpu_check.py (e.g. --steps 10).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "bench/gpu_check.sh: no CUDA GPU is visible to $PY, so there is nothing to check here." >&2
  echo "It needs one GPU (and a CUDA build of torch); on a CPU run 'bash run.sh test', whose CUDA tests are skipped." >&2
  exit 2
fi
exec "$PY" bench/gpu_check.py "$@"
