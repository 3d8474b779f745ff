#!/usr/bin/env bash
# Installs qa_engine and its dependencies (CPU-only torch from the local wheel cache).
# Usage: bash scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q "torch==2.13.0"
if [ "${1:-}" = "--test" ]; then
    python -m pip install -q -e ".[test,china-law]"
else
    python -m pip install -q -e ".[china-law]"
fi
