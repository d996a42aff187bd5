#!/usr/bin/env bash
# The GPU suite: on a CUDA machine, in under 8 minutes, the figures RESULTS.md keeps for a GPU (inference and
# training images/s against timm in the same settings, peak memory, FCMAE sparse vs masked step time). Each part
# has its own time limit, so one slow part cannot eat the others' budget. Output: $OUT/gpu_suite.txt (or
# ./gpu_suite.txt) as well as the terminal. Without CUDA it says so and stops.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log="${OUT:-.}/gpu_suite.txt"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu_suite: no CUDA device here; nothing to measure" | tee "$log"; exit 0; }
cd "$here"
timeout 330 python gpu_suite.py --device cuda "$@" 2>&1 | tee "$log"
timeout 120 python bench_fcmae.py speed memory --device cuda --batch-size 64 --rounds 3 2>&1 | tee -a "$log"
