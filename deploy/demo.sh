#!/usr/bin/env bash
# Runs Sobat Sukabumi on this machine with nothing but Python 3.11+:
# makes .venv, installs the bot and Synapse from PyPI, starts a throwaway local
# Synapse (SQLite, 127.0.0.1 only), creates the accounts and runs the bot.
#   deploy/demo.sh              run until Ctrl-C; prints how to connect Element
#   deploy/demo.sh --scripted   play one whole encrypted curhat and exit 0 or 1
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/venv.sh
ensure_venv embedded
exec .venv/bin/sobat-matrix demo "$@"
