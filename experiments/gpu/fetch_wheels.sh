#!/usr/bin/env bash
# Download, on a development box with pip access, the wheels the GPU machine lacks, into .whl/ (git-ignored
# through .git/info/exclude). The device image has torch, lightning, torchmetrics, torch-geometric, numpy,
# pandas, pyarrow, scipy, matplotlib, rich, pytest and tensorboard, but none of the packages below, and it
# cannot reach a registry. Versions are the ones installed in this checkout's .venv, so the device runs
# what CI tests; the device's Python is 3.12, so compiled wheels are fetched for cp312 (DEVICE_PYTHON=3.x to change).
#   experiments/gpu/fetch_wheels.sh          # then: experiments/gpu/README.md
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
DEST=.whl
PACKAGES=(
  alembic annotated-types colorlog cwevals distro googleapis-common-protos hydra-core hydra-joblib-launcher
  mako omegaconf opentelemetry-api opentelemetry-exporter-http-transport opentelemetry-exporter-otlp-common
  opentelemetry-exporter-otlp-proto-common opentelemetry-exporter-otlp-proto-http opentelemetry-proto
  opentelemetry-sdk opentelemetry-semantic-conventions optuna platformdirs pydantic pydantic-core
  sqlalchemy typing-inspection wandb
)
exclude=$(git rev-parse --git-path info/exclude)  # a worktree's .git is a file
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
rm -rf "$DEST" && mkdir -p "$DEST"
pins=()
for name in "${PACKAGES[@]}"; do
  version=$("$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name") || {
    echo "fetch_wheels: $name is not installed in $PYTHON's environment (pip install -e '.[dev]' first)" >&2
    exit 1
  }
  pins+=("$name==$version")
done
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${DEVICE_PYTHON:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${pins[@]}"
# omegaconf's grammar runtime is published as a source archive only: build its (pure-Python) wheel here.
antlr=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('antlr4-python3-runtime'))")
"$PYTHON" -m pip wheel --quiet --no-deps -w "$DEST" "antlr4-python3-runtime==$antlr"
echo "fetch_wheels: $(ls "$DEST" | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
