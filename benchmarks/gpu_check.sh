#!/usr/bin/env bash
# Every GPU measurement in one go, for the first session that is lent a GPU (one H100/H200):
#   1. the batched fitter sweep, 1k..100k frames             -> benchmarks/results/gpu_fit.json
#   2. FAN + S3FD pooled across clips vs per frame            -> benchmarks/results/gpu_fan_batched.json
#   3. text-to-video cost at the published transformer sizes  -> benchmarks/results/gpu_diffusion_clip_cost.json
#      (HunyuanVideo 13B in its own step                      -> benchmarks/results/gpu_diffusion_hunyuan.json)
#      (random bf16 weights; a few denoising steps: cost per step does not depend on the count)
#   4. LM MFU, a ~0.5B Qwen3-shaped model under DeepSpeed ZeRO-2 bf16 -> benchmarks/results/gpu_lm_mfu.json
# Each step is time-boxed (`timeout`); one failing does not stop the others; the budgets sum to
# under 8 minutes. A summary (benchmarks/results/gpu_check.json) lists each step's status and time.
#
#   bash benchmarks/gpu_check.sh            # run (needs CUDA)
#   bash benchmarks/gpu_check.sh --dry-run  # print the commands and budgets only (works anywhere)
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v "$PY" || command -v python3 || echo python)
RESULTS=benchmarks/results
LOGS=${GPU_CHECK_LOGS:-.tmp/gpu_check}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1

# name | seconds | command. Budgets from the first H200 run (2026-11-29): the fitter sweep took 9 s and
# the MFU step 76 s; FAN with 16 clips x 32 frames and a best-of-2 baseline, and HunyuanVideo at
# full length after the three other families, outran their budgets, hence the smaller FAN workload
# and HunyuanVideo's own step (2 s of video, 2 steps). 30 + 60 + 170 + 100 + 100 = 460 s < 480 s.
STEPS=(
  "fit|30|$PY benchmarks/fit_gpu.py --sizes 1000,10000,100000 --frames 50 --chunk-frames 20000 --out gpu_fit"
  "fan|60|$PY benchmarks/fan_batched.py --clips 4 --frames-per-clip 16 --size 640x360 --batch-sizes 8 32 64 --repeats 1 --device cuda --out gpu_fan_batched"
  "diffusion|170|$PY benchmarks/diffusion_clip_cost.py --scale full --families wan,cogvideox,ltx --steps 3 --repeats 1 --batch 2 --out gpu_diffusion_clip_cost"
  "hunyuan|100|$PY benchmarks/diffusion_clip_cost.py --scale full --families hunyuan --steps 2 --seconds 2 --repeats 1 --batch 2 --out gpu_diffusion_hunyuan"
  "lm_mfu|100|$PY benchmarks/lm_train_bench.py --gpu-only --gpu-steps 20"
)

if [ "$DRY" = 1 ]; then
  total=0
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name budget cmd <<<"$step"
    echo "[$name] timeout ${budget}s $cmd"
    total=$((total + budget))
  done
  echo "total budget: ${total}s"
  exit 0
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to $PY" >&2
  exit 2
fi
mkdir -p "$LOGS" "$RESULTS"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOGS/device.txt" 2>&1 || true
summary=()
failed=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r name budget cmd <<<"$step"
  echo "== [$name] (budget ${budget}s): $cmd"
  start=$(date +%s)
  # shellcheck disable=SC2086  # the command is a word list on purpose
  timeout --kill-after=10 "$budget" $cmd > "$LOGS/$name.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  case $rc in
    0) status=ok ;;
    124|137) status=timeout; failed=$((failed + 1)) ;;
    *) status="failed(rc=$rc)"; failed=$((failed + 1)) ;;
  esac
  echo "   $status in ${took}s (log: $LOGS/$name.log)"
  [ "$status" = ok ] || tail -n 15 "$LOGS/$name.log" | sed 's/^/   | /'
  summary+=("{\"step\": \"$name\", \"status\": \"$status\", \"seconds\": $took, \"budget_s\": $budget}")
done

device=$(head -n 1 "$LOGS/device.txt" 2>/dev/null | tr -d '"')
{
  echo "{\"device\": \"$device\", \"date\": \"$(date -u +%FT%TZ)\", \"steps\": ["
  (IFS=,; echo "${summary[*]}")
  echo "]}"
} > "$RESULTS/gpu_check.json"
echo "== summary ($RESULTS/gpu_check.json)"
cat "$RESULTS/gpu_check.json"
ls -1 "$RESULTS"/gpu_*.json
exit $(( failed > 0 ? 1 : 0 ))
