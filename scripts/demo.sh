#!/usr/bin/env bash
# The main job on the embedded default (a local vault): init, put a directory, change it, put again
# (incremental), list, restore, verify. Everything lives in a temporary folder that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$PWD/.venv/bin:$PATH"
export VAULT_PATH="$work/vault"
printf 'demo password\n' > "$work/password" && chmod 600 "$work/password"
export VAULT_PASSWORD_FILE="$work/password"
mkdir -p "$work/docs/notes"
cp README.md LICENSE "$work/docs/" && echo "first draft" > "$work/docs/notes/todo.txt"

set -x
vault init
vault put "$work/docs"
echo "second draft" > "$work/docs/notes/todo.txt"
vault put "$work/docs"
vault ls
vault history docs
mkdir "$work/restored"                  # an existing directory: the item is restored inside it
vault get docs -o "$work/restored"
diff -r "$work/docs" "$work/restored/docs"
vault get docs/notes/todo.txt --version 1 -o -
vault check --read-data
vault info
set +x
echo "demo finished: restored tree is identical"
