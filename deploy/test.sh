#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests against a real
# Synapse that the suite starts on 127.0.0.1 itself. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/venv.sh
ensure_venv test
exec .venv/bin/python -m pytest "$@"
