#!/usr/bin/env bash
# Run part of a long table ON the GPU machine for a fixed time, and bring back what completed (see
# experiments/gpu/README.md). From the repository root (env.sh installs the carried wheels if needed):
#   experiments/gpu/table_chunk.sh DEFINITION SWEEP_DIR SECONDS [JOBS] [extra overrides, --sweeps A,B...]
# SWEEP_DIR is the carried copy of the table's sweep dir (no checkpoints needed). The table is resumed with
# `trainer=gpu` (TRAINER=default tries it on a CPU), JOBS (default 12) jobs at a time, for SECONDS, then
# stopped; the runs that completed meanwhile, and the sweeps' multirun.yaml, are packed without checkpoints
# into $OUT/runs.tgz. Back here:
#   mkdir -p /tmp/chunk && tar -xzf <files_at>/runs.tgz -C /tmp/chunk
#   recsci table DEFINITION --merge-from /tmp/chunk --sweep-dir <the table's sweep dir>
set -uo pipefail
[ $# -ge 3 ] || { sed -n 2,11p "$0" >&2; exit 2; }
definition=$1 sweep_dir=$2 seconds=$3 jobs=${4:-12}
shift $(( $# >= 4 ? 4 : 3 ))
OUT=${OUT:-/tmp/recsci_gpu_out}
mkdir -p "$OUT"
. "$(dirname "$0")/env.sh"
export RECSCI_DATA=${RECSCI_DATA:-$PWD/.devdata}
started=$(mktemp)
# Its own process group, so that the deadline stops the table and every job it started.
setsid python3 -m recsci table "$definition" --resume --sweep-dir "$sweep_dir" --jobs "$jobs" --no-wandb \
  --no-readme "trainer=${TRAINER:-gpu}" "$@" > "$OUT/table_chunk.log" 2>&1 &
table=$!
( exec >/dev/null 2>&1; sleep "$seconds"; kill -TERM -- "-$table"; sleep 20; kill -KILL -- "-$table" ) &
deadline=$!
wait "$table"
echo "table exited with $? (deadline ${seconds}s)" >> "$OUT/table_chunk.log"
pkill -P "$deadline" 2>/dev/null; kill "$deadline" 2>/dev/null  # the watcher and its sleep, if still waiting
# What completed during this chunk (metrics.json newer than the start), and every sweep's multirun.yaml.
(
  cd "$sweep_dir" || exit 2
  { find . -name multirun.yaml -not -path '*/.superseded/*'
    find . -name metrics.json -newer "$started" -not -path '*/.superseded/*' -exec grep -l '"status": "completed"' {} + \
      | xargs -r -n1 dirname; } > "$OUT/merged.txt"
  tar --exclude=checkpoints -czf "$OUT/runs.tgz" -T "$OUT/merged.txt"
)
echo "table_chunk.sh: $(grep -vc multirun.yaml "$OUT/merged.txt") completed run(s) in $OUT/runs.tgz"
