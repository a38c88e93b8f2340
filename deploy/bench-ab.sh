#!/usr/bin/env bash
# deploy/bench-ab.sh — compare the shipped parkcloud of another revision with
# this tree's, as bench-binary measures it (make bench-binary-ab BASE=REV).
#
# bench-binary's PARKCLOUD_BIN=a=…,b=… runs several binaries against a schema
# this tree's harness migrated, which only works while they share their
# migrations: a binary re-creates its own PL/pgSQL on start, and an older
# signature next to a newer one makes calls ambiguous. Here each side runs
# its own harness on its own schema, from a git worktree of BASE, and the
# two alternate, round by round, so that both meet the same moments of a
# shared machine, each going first every other round. pgbench is not run (BENCH_PGBENCH=off): the comparison is
# between the two binaries.
#
# Usage: deploy/bench-ab.sh BASE [ROUNDS]
#   BASE    a git revision (default HEAD~1)
#   ROUNDS  rounds of both sides (default 3)
# BENCH_MODES and BENCH_N pass through to the benchmark.
set -Eeuo pipefail

readonly PROG=bench-ab.sh
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

base=${1:-HEAD~1}
rounds=${2:-3}
root=$(git rev-parse --show-toplevel) || die "not in a git checkout"
rev=$(git -C "$root" rev-parse --short "$base") || die "unknown revision $base"
work=$(mktemp -d "${TMPDIR:-/tmp}/parkgate-ab.XXXXXX")
cleanup() { git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

git -C "$root" worktree add --detach "$work/base" "$rev" >/dev/null
for side in base this; do
  dir=$root
  [[ $side == base ]] && dir=$work/base
  (cd "$dir" && go build -o "$work/parkcloud-$side" ./cloud/cmd/parkcloud) || die "build $side"
done

export BENCH_PGBENCH=off
# The harness gives the lots a past since 2026-12-06 (BENCH_HISTORY). A base
# older than that would run on empty schemas and this tree on full ones: both
# run empty then, like for like, and the line below says so.
if ! grep -q BENCH_HISTORY "$work/base/cloud/httpapi/binary_bench_test.go" 2>/dev/null; then
  export BENCH_HISTORY=0
  printf '%s: base %s has no BENCH_HISTORY: both sides run on empty schemas\n' "$PROG" "$rev"
fi
printf '%s: base %s vs this tree, %d rounds, alternating\n' "$PROG" "$rev" "$rounds"
for ((r = 1; r <= rounds; r++)); do
  # ABBA: the side that goes first swaps every round, so that neither gets the
  # box's drift (or whatever the run before leaves behind) every time.
  sides=(base this)
  ((r % 2 == 0)) && sides=(this base)
  for side in "${sides[@]}"; do
    dir=$root
    [[ $side == base ]] && dir=$work/base
    (cd "$dir" && PARKCLOUD_BIN="$side=$work/parkcloud-$side" \
      go test -run '^$' -bench Binary -benchtime 1x -timeout 30m ./cloud/httpapi/ 2>&1) |
      grep '^BINARY' | grep -v ' pgbench ' | sed "s/(median of 1)/(round $r)/" || die "$side round $r failed"
  done
done
