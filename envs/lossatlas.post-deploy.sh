#!/usr/bin/env bash
# Run by Snakemake in the new conda env (a copy of this script, from the folder Snakemake runs in,
# the project root): installs lossatlas from the project's src/, editable, so that the env runs
# the checkout's engine.
set -euo pipefail
if [[ ! -f pyproject.toml || ! -d src/lossatlas ]]; then
    echo "lossatlas post-deploy: $PWD is not the lossatlas project root (run snakemake there)" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation --editable "$PWD"
