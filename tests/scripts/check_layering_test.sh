#!/usr/bin/env bash
# scripts/check-layering: a copy of the source tree passes; the same copy with one forbidden
# include planted (one per rule) fails with exit 1 and one line naming the file and the
# include. Usage: check_layering_test.sh SOURCE_DIR
set -euo pipefail
SRC="$1"
CHECK="$SRC/scripts/check-layering"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for layer in common tasks worker engine dashboard cli lib; do
  mkdir -p "$WORK/tree/$layer"
  cp "$SRC/$layer"/*.cc "$SRC/$layer"/*.h "$WORK/tree/$layer/" 2>/dev/null || true
done
"$CHECK" "$WORK/tree" >"$WORK/out" || fail "the unchanged copy fails: $(cat "$WORK/out")"
[ ! -s "$WORK/out" ] || fail "the unchanged copy prints: $(cat "$WORK/out")"

# LAYER FILE INCLUDE: plant `#include "INCLUDE"` in a copy of LAYER/FILE; the check must fail.
plant() {
  local layer="$1" file="$2" include="$3"
  rm -rf "$WORK/bad" && cp -r "$WORK/tree" "$WORK/bad"
  local target="$WORK/bad/$layer/$file"
  [ -f "$target" ] || fail "no $layer/$file in the tree"
  { echo "#include \"$include\""; cat "$target"; } >"$target.new" && mv "$target.new" "$target"
  local rc=0
  "$CHECK" "$WORK/bad" >"$WORK/out" || rc=$?
  [ "$rc" -eq 1 ] || fail "$layer/$file including $include: exit $rc, want 1"
  [ "$(wc -l <"$WORK/out")" -eq 1 ] || fail "want one line, got: $(cat "$WORK/out")"
  grep -qF "$layer/$file:1: #include \"$include\"" "$WORK/out" ||
    fail "the line does not name the file and include: $(cat "$WORK/out")"
}

plant common codec.cc engine/job.h
plant common task.h cli/cli.h
plant common chunking.cc worker/worker_loop.h
plant common status.h lib/batch.h
plant common user_task.cc tasks/builtin_tasks.h
plant tasks builtin_tasks.cc engine/job.h
plant tasks builtin_tasks.h worker/worker_loop.h
plant worker worker_loop.cc engine/scheduler.h
plant worker main.cc cli/cli.h
plant worker task_runner.h lib/spmd.h
plant engine job.cc cli/progress.h
plant engine scheduler.h lib/batch.h
plant lib batch.cc cli/cli.h
plant engine job.cc dashboard/model.h
plant dashboard model.cc cli/cli.h
plant dashboard dashboard.cc tasks/builtin_tasks.h
plant lib pool.cc dashboard/dashboard.h
echo "check-layering: every planted include was caught"
