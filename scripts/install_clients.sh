#!/usr/bin/env bash
# Install the coding agents BreakingWind is tested with, at pinned versions, into a cache folder
# (never into the project's venv): Codex CLI, Claude Code and opencode from npm; aider and llm
# from PyPI, each in its own venv. tests/test_real_clients.py runs them against a test daemon and
# skips a client that is not installed here.
#
#   scripts/install_clients.sh            # all five
#   scripts/install_clients.sh aider llm  # some of them
#
# The folder is $BW_CLIENTS_DIR, default ~/.cache/breakingwind/clients.
set -euo pipefail

CODEX_VERSION=0.169.0
CLAUDE_CODE_VERSION=2.1.328
OPENCODE_VERSION=1.18.33
AIDER_VERSION=0.86.2
LLM_VERSION=0.36

DIR="${BW_CLIENTS_DIR:-$HOME/.cache/breakingwind/clients}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$DIR"
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(codex claude opencode aider llm)

npm_install() {  # name package version
    local prefix="$DIR/$1"
    mkdir -p "$prefix"
    # --ignore-scripts is not used: some clients fetch their platform binary from npm itself
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$2@$3"
}

py_install() {  # name requirement
    local venv="$DIR/$1"
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$2"
}

for client in "${wanted[@]}"; do
    echo "installing $client into $DIR/$client"
    case "$client" in
        codex) npm_install codex @openai/codex "$CODEX_VERSION" ;;
        claude) npm_install claude @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" ;;
        opencode) npm_install opencode opencode-ai "$OPENCODE_VERSION" ;;
        aider) py_install aider "aider-chat==$AIDER_VERSION" ;;
        llm) py_install llm "llm==$LLM_VERSION" ;;
        *) echo "unknown client: $client (codex, claude, opencode, aider, llm)" >&2; exit 2 ;;
    esac
done
