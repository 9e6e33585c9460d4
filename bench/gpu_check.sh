#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py says what it runs and writes).
#
#   bench/gpu_check.sh OUT_DIR [--device cuda|cpu] [--quick] [--only PART ...]
#   bench/gpu_check.sh --download-wheels      # on a machine with a package registry
#
# It runs on a bare GPU image with python3 from PATH (or $PYTHON): no virtualenv, no package
# index. What the core needs beyond such an image (torch, numpy, pandas, pyarrow, scikit-learn,
# pyyaml, pytest) comes from cp312 wheels in the git-ignored folder .whl/, installed into a
# temporary folder: carry .whl with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=(  # the core's dependencies a bare GPU image lacks, pinned as the project resolves them
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  rapidfuzz==3.14.6
)

if [ "${1:-}" = "--download-wheels" ]; then
  mkdir -p .whl
  platforms=()
  for p in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
  done
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${WHEELS[@]}"
  ls .whl
  exit 0
fi

if ! "$PY" -c 'import pydantic, rapidfuzz, yaml' 2>/dev/null; then
  if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "gpu_check: the core's dependencies (${WHEELS[*]}) are missing and .whl/ holds no" \
      "wheels: run 'bench/gpu_check.sh --download-wheels' where a registry is reachable" >&2
    exit 2
  fi
  site="${TMPDIR:-/tmp}/crnn-gpu-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" bench/gpu_check.py "$@"
