#!/usr/bin/env bash
# deploy/drill.sh — install what the failover drills (deploy/failover, make
# drill-postgres, make drill-redis) run on top of deploy/services.sh: Patroni
# and etcd for the PostgreSQL failover, redis-sentinel for the Redis one.
# Only what is missing, from Debian's packages, in one apt-get run; nothing is
# started or configured here (the drills run their own etcd, Patroni nodes
# and sentinels on free ports, never the shared services). Packages whose
# postinst would start a daemon (etcd-server, patroni, redis-sentinel) are
# stopped again where systemd started them, so only the drills run them.
#
# Usage: deploy/drill.sh [--check]
#   --check  only report; exit 1 if anything is missing.
set -Eeuo pipefail

readonly PROG=drill.sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

have() { command -v "$1" >/dev/null 2>&1; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

missing=()
have patroni || missing+=(patroni)
have etcd || missing+=(etcd-server)
have redis-sentinel || missing+=(redis-sentinel)
# Patroni runs Debian's python3 with these; a broken install lacks them.
if have patroni && ! /usr/bin/python3 -c 'import psycopg2, yaml' 2>/dev/null; then missing+=(python3-psycopg2 python3-yaml); fi

if [[ ${1:-} == --check ]]; then
  if ((${#missing[@]})); then printf 'drill      MISSING  %s\n' "${missing[*]}"; exit 1; fi
  printf 'drill      ok       patroni %s, etcd %s, redis-sentinel\n' \
    "$(patroni --version 2>/dev/null | awk '{print $2}')" "$(etcd --version 2>/dev/null | awk 'NR==1{print $3}')"
  exit 0
fi

if ((${#missing[@]})); then
  ((EUID == 0)) || die "must run as root to install ${missing[*]} (try: sudo $0)"
  have apt-get || die "apt-get not found: install ${missing[*]} by hand (this script knows Debian only)"
  apt=(apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 -qq)
  log=$(mktemp "${TMPDIR:-/tmp}/parkgate-drill.XXXXXX")
  trap 'rm -f "$log"' EXIT
  "${apt[@]}" update >"$log" 2>&1 || printf '%s: warning: apt-get update failed; trying the lists at hand\n' "$PROG" >&2
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
    { tail -n 15 "$log" >&2; die "apt-get install ${missing[*]} failed"; }
  # With systemd, the packages start their daemons on the default ports; the
  # drills need none of them.
  if have systemctl && [[ -d /run/systemd/system ]]; then
    systemctl disable --now etcd patroni redis-sentinel >/dev/null 2>&1 || true
  fi
fi
have patroni && have etcd && have redis-sentinel || die "patroni, etcd and redis-sentinel still missing after install"
printf 'drill      ok       patroni, etcd, redis-sentinel\n'
