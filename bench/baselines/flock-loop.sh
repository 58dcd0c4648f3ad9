#!/usr/bin/env bash
# Baseline: flock(1) in a bash loop, the shell-script way to serialise installs. Each operation
# takes the lock with `flock -x 9` (a fork+exec of flock(1) on an inherited fd), does a
# read-modify-write of a counter file with bash builtins, and drops it with `flock -u 9` (another
# fork+exec). A pair is two operations. Same line protocol as the other workers.
# Usage: flock-loop.sh DIR DURATION_MS
set -u
dir=$1
duration_ms=$2
exec 9>"$dir/counter.lock"
[ -f "$dir/counter" ] || echo 0 >"$dir/counter"
echo '{"ready":true}'
while read -r cmd; do
  [ "$cmd" = go ] || continue
  start=${EPOCHREALTIME/./}
  end=$((start + duration_ms * 1000))
  pairs=0
  while ((${EPOCHREALTIME/./} < end)); do
    for _op in reserve release; do
      flock -x 9
      read -r c <"$dir/counter"
      printf '%d\n' $((c + 1)) >"$dir/counter"
      flock -u 9
    done
    pairs=$((pairs + 1))
  done
  stop=${EPOCHREALTIME/./}
  echo "{\"pairs\":$pairs,\"errors\":0,\"elapsedMs\":$(((stop - start) / 1000)),\"lat\":[]}"
done
