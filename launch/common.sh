# Sourced by single_host.sh and slurm.sbatch (not run on its own): the environment every
# process gets, and the Python command for `suite` or `run`. Needs REPO set to the repository.

# JAX preallocates this share of each GPU (default 0.75): the two frozen LLMs take ~31 GB of an
# 80 GB H100 before the translator, its optimizer and the activations (launch/README.md).
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}
# Overlap the data-parallel gradient all-reduce with the backward pass.
export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_gpu_enable_latency_hiding_scheduler=true"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}

usage() {
  cat >&2 <<USAGE
usage: $1 suite SUITE_FILE DIR [ablations flags...]
       $1 run CONFIG_FILE WORKDIR [--config.key=value ...]
  suite: runs the suite in DIR/<YYYYmmdd_HHMMSS>/, or continues in DIR if it holds suite.json.
  run:   one experiment, --mode=\${MODE:-all}.
USAGE
  exit 2
}

# Sets CMD (the Python command line) and LOG_DIR (where processes other than 0 write their
# output). The suite root is fixed here, before any process starts, so all processes agree.
build_command() {
  local script=$1 mode=$2 file=$3 dir=$4
  shift 4
  case "$mode" in
    suite)
      if [[ -f "$dir/suite.json" ]]; then
        LOG_DIR=$dir
      else
        LOG_DIR="$dir/$(date +%Y%m%d_%H%M%S)"
        mkdir -p "$LOG_DIR"
      fi
      CMD=("$PYTHON" -m interlingua_jax.ablations --suite="$file" --resume="$LOG_DIR" "$@")
      ;;
    run)
      LOG_DIR=$dir
      mkdir -p "$LOG_DIR"
      CMD=("$PYTHON" -m interlingua_jax.main --config="$file" --workdir="$dir" --mode="${MODE:-all}" "$@")
      ;;
    *)
      usage "$script"
      ;;
  esac
}
