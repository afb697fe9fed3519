# Sourced by check.sh and table_chunk.sh: make recsci importable on the GPU machine. Its image lacks Hydra,
# Optuna, pydantic, W&B...: install the carried wheels (.whl/, from fetch_wheels.sh) into /tmp/site, unless
# python3 imports them already (a development venv first on PATH, as the tests use it). The checkout itself
# is not installed: src/ on the path gives recsci and its Hydra plugins.
if ! python3 -c "import hydra, omegaconf, optuna, pydantic, sqlalchemy, wandb" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "$(basename "$0"): no wheels in .whl/: run experiments/gpu/fetch_wheels.sh here first and carry .whl" >&2
    exit 2
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "$(basename "$0"): installing the carried wheels failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
