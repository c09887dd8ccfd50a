#!/usr/bin/env bash
# One host (the 4-GPU machine): a whole suite or one experiment.
#
#   launch/single_host.sh suite configs/suites/paper.py /runs
#   launch/single_host.sh suite configs/suites/paper.py /runs/20250101_120000   # continue it
#   launch/single_host.sh run configs/stable_64.py /runs/stable_64 --config.train.steps=100
#
# By default one JAX process drives every GPU in CUDA_VISIBLE_DEVICES (the usual JAX setup;
# no jax.distributed needed). NUM_PROCESSES=N starts N processes instead, joined through
# jax.distributed on localhost, each with its share of the GPUs: the multi-host code path on
# one machine. With JAX_PLATFORMS=cpu the same runs on CPU devices (CPU collectives).
# Relative paths are relative to the repository root.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"  # suite files name their configs relative to the repository root
source launch/common.sh
[[ $# -ge 3 ]] || usage "$0"
build_command "$0" "$@"

export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0,1,2,3}
NUM_PROCESSES=${NUM_PROCESSES:-1}
if [[ "$NUM_PROCESSES" -eq 1 ]]; then
  exec "${CMD[@]}"
fi

IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
if (( ${#gpus[@]} % NUM_PROCESSES != 0 )); then
  echo "NUM_PROCESSES=$NUM_PROCESSES does not divide the ${#gpus[@]} GPUs in" \
       "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES; choose a divisor or set CUDA_VISIBLE_DEVICES" >&2
  exit 2
fi
per=$(( ${#gpus[@]} / NUM_PROCESSES ))
export JAX_COORDINATOR_ADDRESS="127.0.0.1:${JAX_COORDINATOR_PORT:-12355}"
export JAX_NUM_PROCESSES=$NUM_PROCESSES
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for (( i = 0; i < NUM_PROCESSES; i++ )); do
  share=$(IFS=,; echo "${gpus[*]:i*per:per}")
  if (( i == 0 )); then
    JAX_PROCESS_ID=$i CUDA_VISIBLE_DEVICES=$share "${CMD[@]}" &
  else
    echo "process $i: output in $LOG_DIR/process_$i.log"
    JAX_PROCESS_ID=$i CUDA_VISIBLE_DEVICES=$share "${CMD[@]}" > "$LOG_DIR/process_$i.log" 2>&1 &
  fi
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=$?
done
exit "$status"
