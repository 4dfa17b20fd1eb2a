#!/usr/bin/env bash
# Submit one pipeline stage as a Ray job, with this checkout as the job's working dir.
#
#   jobs/submit.sh STAGE [--address http://HOST:8265] [--no-wait] [--preset P] [--config F] [--set k=v] [--out URL]
#
# STAGE: prompts | generate | train-tokenizer | tokenize | train-lm | eval | run. A --config path is
# relative to the repository root (the job runs there, in the uploaded copy).
# The config is resolved and the storage checked here first (exit 2 when S3 credentials are
# missing or the endpoint is unreachable); S3 settings of this shell go to the job as env vars.
# Token authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or ~/.ray/auth_token).
# `tdmm submit STAGE ...` does the same through the Python job client.
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
STAGE=$1
shift
ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
WAIT=()
ARGS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --address) ADDRESS=$2; shift 2 ;;
    --address=*) ADDRESS=${1#*=}; shift ;;
    --no-wait) WAIT=(--no-wait); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RUNTIME_ENV=$("$PYTHON" -m tdmm_ray.cluster_jobs.prepare "$STAGE" --address "$ADDRESS" "${ARGS[@]}")
SCRIPT=jobs/${STAGE//-/_}.py

exec ray job submit --address "$ADDRESS" --working-dir . --runtime-env-json "$RUNTIME_ENV" "${WAIT[@]}" \
  -- python "$SCRIPT" "${ARGS[@]}"
