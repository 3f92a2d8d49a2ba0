#!/usr/bin/env bash
# Run the conformance suite on a machine with a CUDA GPU, without installing the package:
# the plugin is loaded with -p and the checkout is put on the path. The report (CPU and CUDA
# rows) goes to the directory given as $1 (default reports/cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/cuda}
workers=${WORKERS:-8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
PY
python3 -m pytest conformance -p conformance.plugin -p no:cacheprovider --hypothesis-profile conformance-ci \
  --report-dir "$out" -n "$workers" -q "${@:2}"
