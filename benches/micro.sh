#!/usr/bin/env bash
# The criterion micro-benchmarks, summarised: one line per benchmark (median time of
# criterion's estimate) plus the allocation and heap figures the benchmarks print.
# `benches/micro.sh --update-readme` also puts the summary into benches/README.md between
# the `<!-- micro:begin -->` / `<!-- micro:end -->` markers. Extra arguments go to
# criterion (a filter, e.g. `benches/micro.sh router`).
set -euo pipefail
cd "$(dirname "$0")/.."
update=0
args=()
for a in "$@"; do
  if [ "$a" = "--update-readme" ]; then update=1; else args+=("$a"); fi
done
log=$(mktemp)
cargo bench -p pingway-benches --bench micro -- "${args[@]}" 2>&1 | tee "$log" >&2
summary=$(python3 - "$log" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
out, name = [], None
for l in lines:
    if re.match(r"^(allocations|heap|per-request) ", l):
        out.append(l)
    m = re.match(r"^(\S+)\s+time:\s+\[(.*)\]", l)
    if m:
        name = m.group(1)
        out.append(f"{name:<58} {m.group(2).split()[2]} {m.group(2).split()[3]}")
        name = None
        continue
    m = re.match(r"^(\S+/\S+)\s*$", l)
    if m:
        name = m.group(1)
        continue
    m = re.match(r"^\s+time:\s+\[(.*)\]", l)
    if m and name:
        parts = m.group(1).split()
        out.append(f"{name:<58} {parts[2]} {parts[3]}")
        name = None
print("\n".join(out))
PY
)
rm -f "$log"
echo "$summary"
if [ "$update" = 1 ]; then
  SUMMARY="$summary" python3 - <<'PY'
import os, datetime, subprocess
path = "benches/README.md"
text = open(path).read()
begin, end = "<!-- micro:begin -->", "<!-- micro:end -->"
b, e = text.index(begin), text.index(end)
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
body = f"{begin}\n`benches/micro.sh` on {date} (UTC), commit {commit} (median of criterion's estimate):\n\n```\n{os.environ['SUMMARY']}\n```\n"
open(path, "w").write(text[:b] + body + text[e:])
print(f"updated {path}")
PY
fi
