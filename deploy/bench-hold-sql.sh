#!/usr/bin/env bash
# deploy/bench-hold-sql.sh — pgbench of parkgate_hold alone, on two schemas
# that differ only by the SQL each side is given after the migrations: the
# quick way to try an index or a key on the hold's write before building it
# into a migration (make bench-binary-ab then measures the shipped binary).
#
# Each round makes both schemas afresh (bin/parkcloud migrate, the side's
# SQL, 100 lots of 50 spots with 10 ended reservations a spot, ANALYZE),
# then runs pgbench on each, the side that goes first swapping every round.
# A transaction makes 4 holds of 4 lots in lot id order, as the calm lots'
# batches do (booking.Service.calm), payments off; 8 clients. It prints
# holds/s per side and round, and the ratio B/A. Without the service in
# front, a change to Postgres' work per hold shows in 2-3 minutes with far
# less noise than the binary's rounds; its absolute figures are not the
# binary's.
#
# Usage: deploy/bench-hold-sql.sh [A.sql|-] [B.sql|-] [ROUNDS] [SECONDS]
#   A.sql, B.sql  applied to side a, b after migrating ('-' or none: nothing)
#   ROUNDS        default 4; SECONDS of pgbench per side and round, default 10
# DATABASE_URL (default deploy/services.sh's) names the database; the schemas
# bench_hold_a and bench_hold_b are dropped and made in it.
set -Eeuo pipefail

readonly PROG=bench-hold-sql.sh
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

sql_a=${1:--}
sql_b=${2:--}
rounds=${3:-4}
secs=${4:-10}
url=${DATABASE_URL:-postgres://parkgate:parkgate@127.0.0.1:5432/parkgate?sslmode=disable}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v pgbench >/dev/null || die "pgbench not found (Debian: postgresql-client)"
[[ -x $root/bin/parkcloud ]] || die "no bin/parkcloud: make build first"
for f in "$sql_a" "$sql_b"; do
  [[ $f == - || -r $f ]] || die "cannot read $f"
done
work=$(mktemp -d "${TMPDIR:-/tmp}/parkgate-holdsql.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Lot n's id sorts as n does, so a transaction's 4 lots, one from each
# quarter, are locked in id order, as DB.Holds takes them: no deadlocks.
lot() { printf "('00000000-0000-0000-0000-' || lpad(%s::text, 12, '0'))::uuid" "$1"; }
cat >"$work/seed.sql" <<EOF
INSERT INTO lots (id, name, latitude, longitude, time_zone, hourly_rate_amount, currency, total_spots)
SELECT $(lot g), 'lot ' || g, 45, 7, 'Europe/Rome', 250, 'EUR', 50 FROM generate_series(1, 100) g;
INSERT INTO spots (lot_id, label) SELECT $(lot g), 'S' || s FROM generate_series(1, 100) g, generate_series(1, 50) s;
INSERT INTO reservations (id, lot_id, spot_id, plate, starts_at, ends_at, status, hold_expires_at, price_amount, currency)
SELECT gen_random_uuid(), s.lot_id, s.id, 'PAST' || k, now() - make_interval(days => k),
       now() - make_interval(days => k) + interval '2 hours', 'COMPLETED', now() - make_interval(days => k), 500, 'EUR'
  FROM spots s, generate_series(1, 10) k;
ANALYZE lots, spots, reservations;
EOF
{
  for q in 1 2 3 4; do
    printf '\\set l%d random(%d, %d)\n\\set m%d random(60, 5256000)\n' "$q" $((q * 25 - 24)) $((q * 25)) "$q"
  done
  echo 'BEGIN;'
  for q in 1 2 3 4; do
    printf "SELECT * FROM parkgate_hold(gen_random_uuid(), %s, NULL, 'AB123CD', now() + make_interval(mins => :m%d), now() + make_interval(mins => :m%d + 120), interval '10 minutes', 500, 'EUR', gen_random_uuid()::text, '\\\\x00'::bytea, interval '1 minute', '\\\\x00'::bytea, 201, NULL, NULL, 250, NULL, NULL, false);\n" \
      "$(lot ":l$q")" "$q" "$q"
  done
  echo 'COMMIT;'
} >"$work/hold.sql"

prepare() { # side sql
  local schema=bench_hold_$1
  PGOPTIONS="-c client_min_messages=warning" psql "$url" -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema" >/dev/null
  DATABASE_URL="$url&options=-csearch_path%3D$schema,public" "$root/bin/parkcloud" migrate >/dev/null 2>&1 ||
    die "migrate $schema"
  if [[ $2 != - ]]; then
    PGOPTIONS="-c search_path=$schema,public" psql "$url" -q -v ON_ERROR_STOP=1 -f "$2" >/dev/null || die "apply $2 to $schema"
  fi
  PGOPTIONS="-c search_path=$schema,public" psql "$url" -q -v ON_ERROR_STOP=1 -f "$work/seed.sql" >/dev/null || die "seed $schema"
}

run() { # side -> holds/s
  local out tx held
  out=$(PGOPTIONS="-c search_path=bench_hold_$1,public" pgbench "$url" -n -M prepared -c 8 -j 2 -T "$secs" -f "$work/hold.sql" 2>&1) ||
    die "pgbench $1: $out"
  grep -q 'number of failed transactions: 0 ' <<<"$out" || die "pgbench $1: failed transactions: $out"
  # A side's SQL that turned holds into quick refusals would read as a
  # faster hold: count the holds made (the seed has no PENDING row, and
  # a schema serves one run), and let at most 1% be refused: windows of
  # 2 hours in 10 years over 50 spots a lot seldom meet.
  tx=$(awk '/^number of transactions actually processed: / { print $6 }' <<<"$out")
  [[ $tx =~ ^[0-9]+$ && $tx -gt 0 ]] || die "pgbench $1: no transaction count in: $out"
  held=$(PGOPTIONS="-c search_path=bench_hold_$1,public" psql "$url" -qAt -c "SELECT count(*) FROM reservations WHERE status = 'PENDING'") ||
    die "count $1's holds"
  ((held * 100 >= tx * 4 * 99)) || die "side $1 made $held holds of $((tx * 4)) asked: its SQL refuses holds"
  # tps × the holds a transaction actually made.
  awk -v held="$held" -v tx="$tx" '/^tps = / { printf "%.0f", $3 * held / tx }' <<<"$out"
}

printf '%s: a=%s b=%s, %d rounds of %ds, alternating\n' "$PROG" "$sql_a" "$sql_b" "$rounds" "$secs"
for ((r = 1; r <= rounds; r++)); do
  prepare a "$sql_a"
  prepare b "$sql_b"
  declare -A got=()
  sides=(a b)
  ((r % 2 == 0)) && sides=(b a)
  for side in "${sides[@]}"; do
    got[$side]=$(run "$side")
  done
  printf 'round %d: a %s holds/s, b %s holds/s, b/a %s\n' "$r" "${got[a]}" "${got[b]}" \
    "$(awk -v a="${got[a]}" -v b="${got[b]}" 'BEGIN { printf "%.2f", b / a }')"
done
for side in a b; do
  PGOPTIONS="-c client_min_messages=warning" psql "$url" -q -c "DROP SCHEMA IF EXISTS bench_hold_$side CASCADE" >/dev/null
done
