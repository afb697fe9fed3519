#!/usr/bin/env bash
# The GPU check, run ON the GPU machine from the repository root (see experiments/gpu/README.md): install the
# carried wheels, then tests/test_gpu.py (every model of the three problems trains on `trainer=gpu` like on
# the CPU; the sampler and walk fill on CUDA tensors). Logs and a JUnit XML go to $OUT (the device tool
# brings that folder back). Extra arguments go to pytest, e.g. `-k blade` or `-x`.
set -uo pipefail
OUT=${OUT:-/tmp/recsci_gpu_out}
mkdir -p "$OUT"
. "$(dirname "$0")/env.sh"
{
  nvidia-smi -L
  python3 -c "import torch, torch_geometric, lightning, hydra, optuna; print('torch', torch.__version__, \
'| cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', \
'| pyg', torch_geometric.__version__, '| lightning', lightning.__version__, '| hydra', hydra.__version__, \
'| optuna', optuna.__version__)"
} 2>&1 | tee "$OUT/environment.txt"
# The image has pytest-xdist: the GPU tests are independent runs, a few at a time share the device.
workers=()
python3 -c "import xdist" 2>/dev/null && workers=(-n "${GPU_TEST_WORKERS:-4}")
python3 -m pytest tests/test_gpu.py -m gpu -q -p no:cacheprovider -o addopts="-ra" "${workers[@]}" \
  --junitxml="$OUT/test_gpu.xml" "$@" 2>&1 | tee "$OUT/test_gpu.log"
exit "${PIPESTATUS[0]}"
