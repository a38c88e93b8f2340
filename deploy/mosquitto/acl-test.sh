#!/usr/bin/env bash
# deploy/mosquitto/acl-test.sh — run the production broker config (parkgate.conf
# with acl) on a loopback port with a throwaway certificate and passwords, and
# check what each kind of client may and may not do, and that one lot's
# credentials cannot take over another lot's session (client id = username).
# Needs mosquitto, mosquitto-clients and openssl; touches nothing outside a
# temp dir.
# Usage: deploy/mosquitto/acl-test.sh [port]   (default 18883)
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" >/dev/null && pwd)
PORT=${1:-18883}
for c in mosquitto mosquitto_pub mosquitto_sub mosquitto_passwd openssl; do
  command -v "$c" >/dev/null || PATH=$PATH:/usr/sbin command -v "$c" >/dev/null ||
    { echo "acl-test: $c not found (apt-get install mosquitto mosquitto-clients openssl)" >&2; exit 2; }
done
export PATH=$PATH:/usr/sbin

T=$(mktemp -d)
BROKER=
cleanup() {
  [[ -n $BROKER ]] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
# Run as root, mosquitto drops to the mosquitto user: let it read and write here.
chmod 0755 "$T"
mkdir "$T/data"
if ((EUID == 0)) && id mosquitto >/dev/null 2>&1; then chown mosquitto "$T/data"; fi

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$T/server.key" -out "$T/server.crt" 2>/dev/null
LOT_A=11111111-1111-4111-8111-111111111111
LOT_B=22222222-2222-4222-8222-222222222222
touch "$T/passwd"
for u in parkcloud-relay-1 parkcloud-ingest-1; do mosquitto_passwd -b "$T/passwd" "$u" cloud-secret; done
mosquitto_passwd -b "$T/passwd" "$LOT_A" token-a
mosquitto_passwd -b "$T/passwd" "$LOT_A/gates/exit-1" token-a # lot A's second gate's status connection
mosquitto_passwd -b "$T/passwd" "$LOT_B" token-b
chmod 0644 "$T/passwd" "$T/server.key" # a throwaway; real ones are 0640 root:mosquitto
sed -e "s#^password_file .*#password_file $T/passwd#" \
  -e "s#^acl_file .*#acl_file $HERE/acl#" \
  -e "s#/etc/mosquitto/certs/#$T/#" \
  -e "s#^persistence_location .*#persistence_location $T/data/#" \
  -e "s#^listener 8883.*#listener $PORT 127.0.0.1#" \
  "$HERE/parkgate.conf" >"$T/broker.conf"

mosquitto -c "$T/broker.conf" >"$T/broker.log" 2>&1 &
BROKER=$!
C=(-h 127.0.0.1 -p "$PORT" --cafile "$T/server.crt" -q 1)
for _ in $(seq 50); do
  mosquitto_pub "${C[@]}" -u parkcloud-relay-1 -P cloud-secret -t parkgate/v1/lots/x/reservations -n 2>/dev/null && break
  sleep 0.1
done
kill -0 "$BROKER" 2>/dev/null || { echo "acl-test: the broker did not start:" >&2; cat "$T/broker.log" >&2; exit 1; }

pass=0 fail=0
check() { # check NAME WANT GOT
  if [[ $2 == "$3" ]]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    printf 'FAIL %s\n  want: %q\n  got:  %q\n' "$1" "$2" "$3"
  fi
}
sub() { # sub FILE SECONDS USER PASS TOPIC... : subscribe in the background
  local file=$1 secs=$2 user=$3 pass=$4
  shift 4
  local args=()
  for t in "$@"; do args+=(-t "$t"); done
  timeout "$secs" mosquitto_sub "${C[@]}" -u "$user" -P "$pass" -i "sub-$RANDOM" -v "${args[@]}" >"$T/$file" 2>/dev/null &
  SUBS+=($!)
}
SUBS=()
pub() { mosquitto_pub "${C[@]}" -u "$1" -P "$2" -i "pub-$RANDOM" -t "$3" -m "$4" "${@:5}" 2>/dev/null || true; }
# session FILE SECONDS LOT TOKEN [-i ID] : connect as an edge does (fixed
# client id, clean session off, QoS 1) to its lot's reservations and print
# what arrives: what the broker queued for the session, then live messages.
session() {
  local file=$1 secs=$2 lot=$3 token=$4
  shift 4
  local id=(-i "parkedge-$lot")
  (($# > 0)) && id=("$@")
  timeout "$secs" mosquitto_sub "${C[@]}" -u "$lot" -P "$token" "${id[@]}" -c -v -t "$R/$lot/reservations" >"$T/$file" 2>/dev/null || true
}

# One connection per username: lot A's publishes below would take over a
# session of A's own, so each step uses A's credentials alone.
R=parkgate/v1/lots
sub cloud 12 parkcloud-ingest-1 cloud-secret "\$share/parkcloud/$R/+/gates/+/events" "$R/+/gates/+/status"
session edge-b-start 1 "$LOT_B" token-b # B's agent has a persistent session, and is offline
sub edge-a-spy 2 "$LOT_A" token-a "$R/$LOT_B/reservations" "$R/+/gates/+/events" "$R/$LOT_B/gates/+/status"
sleep 0.5
pub parkcloud-relay-1 cloud-secret "$R/$LOT_B/reservations" cloud-to-b-queued # queued for B
pub parkcloud-relay-1 cloud-secret "$R/$LOT_A/gates/entry-1/events" cloud-forges-event
pub parkcloud-relay-1 cloud-secret "$R/$LOT_B/gates/entry-1/status" cloud-forges-status -r
wait "${SUBS[-1]}" || true
pub "$LOT_A" token-a "$R/$LOT_A/gates/entry-1/events" a-own-event
pub "$LOT_A" token-a "$R/$LOT_B/gates/entry-1/events" a-forges-b-event
pub "$LOT_A" token-a "$R/$LOT_A/gates/entry-1/status" a-online -r
pub "$LOT_A" token-a "$R/$LOT_A/reservations" a-forges-own-reservation
pub "$LOT_A" token-a "$R/$LOT_B/reservations" a-forges-b-reservation
pub "$LOT_A/gates/exit-1" token-a "$R/$LOT_A/gates/exit-1/status" a-exit-online -r
pub "$LOT_A/gates/exit-1" token-a "$R/$LOT_B/gates/exit-1/status" a-exit-forges-b -r
pub "$LOT_A/gates/exit-1" token-a "$R/$LOT_A/gates/entry-1/status" a-exit-forges-entry -r
# Finding 13: lot A's credentials ask for B's client id, keeping the session
# (to be handed B's queue) and then with a clean start (to wipe it).
session a-as-b 1 "$LOT_A" token-a -i "parkedge-$LOT_B"
timeout 1 mosquitto_sub "${C[@]}" -u "$LOT_A" -P token-a -i "parkedge-$LOT_B" -t "$R/$LOT_B/reservations" -v >>"$T/a-as-b" 2>/dev/null || true
# B's agent comes back; while it is online A's credentials try its client id
# again: B must stay connected and get both what was queued and what follows.
session edge-b 4 "$LOT_B" token-b &
SUBS+=($!)
sleep 1
timeout 1 mosquitto_sub "${C[@]}" -u "$LOT_A" -P token-a -i "parkedge-$LOT_B" -t "$R/$LOT_B/reservations" -v >>"$T/a-as-b" 2>/dev/null || true
pub parkcloud-relay-1 cloud-secret "$R/$LOT_B/reservations" cloud-to-b-live
session edge-a-start 1 "$LOT_A" token-a # A's agent too has a persistent session
pub parkcloud-relay-1 cloud-secret "$R/$LOT_A/reservations" cloud-to-a
session edge-a 1 "$LOT_A" token-a
wait "${SUBS[@]}" || true # (timeout's exit status 124 is the normal end)

check "cloud gets lot A's event (shared subscription) and both gates' status, nothing forged" \
  "$R/$LOT_A/gates/entry-1/events a-own-event
$R/$LOT_A/gates/entry-1/status a-online
$R/$LOT_A/gates/exit-1/status a-exit-online" "$(sort "$T/cloud")"
check "edge A gets only the cloud's changes for lot A (queued in its session)" "$R/$LOT_A/reservations cloud-to-a" "$(cat "$T/edge-a")"
check "lot A's credentials as B's client id get nothing of B" "" "$(cat "$T/a-as-b")"
check "edge B keeps its session: the change queued while it was away and the live one" \
  "$R/$LOT_B/reservations cloud-to-b-queued
$R/$LOT_B/reservations cloud-to-b-live" "$(cat "$T/edge-b")"
grep -q "Client [^ ]*$LOT_B already connected" "$T/broker.log" && got=kicked || got=stayed
check "lot A's credentials do not disconnect B's agent" stayed "$got"
check "edge A sees nothing of lot B and no events" "" "$(cat "$T/edge-a-spy")"
mosquitto_pub "${C[@]}" -u "$LOT_A" -P wrong -t x -m y 2>/dev/null && got=accepted || got=refused
check "wrong password refused" refused "$got"
mosquitto_pub "${C[@]}" -t x -m y 2>/dev/null && got=accepted || got=refused
check "anonymous refused" refused "$got"
mosquitto_pub -h 127.0.0.1 -p "$PORT" -u "$LOT_A" -P token-a -t x -m y 2>/dev/null && got=accepted || got=refused
check "plaintext (no TLS) refused" refused "$got"

echo "acl-test: $pass passed, $fail failed"
((fail == 0)) || { echo "--- broker log:" && tail -n 20 "$T/broker.log"; exit 1; }
