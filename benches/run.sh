#!/usr/bin/env bash
# The load harness in one command: builds pingway, bare-pingora, openloop and loadbench in
# release, then runs every scenario (about 10 minutes; `--quick` about 3). Any loadbench
# option passes through, e.g. `benches/run.sh --quick`, `benches/run.sh --scenarios 1,4`,
# `benches/run.sh --profile bare,pingway,nginx`. See benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p pingway -p pingway-benches --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
exec "$target_dir/release/loadbench" --no-build "$@"
