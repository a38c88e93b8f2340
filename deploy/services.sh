#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317 # single-quoted bash -c bodies; functions called by name
# deploy/services.sh — make PostgreSQL, Redis and Mosquitto answer on 127.0.0.1
# for parkgate development and tests, and install the build tools a fresh Debian
# lacks for `make test`: gcc (cgo, which the race detector needs), make, git,
# ca-certificates, curl and chromium (the browser tests). Go itself (1.26) is
# not in Debian's packages at that version: install it from go.dev first.
#
# For each service: if it already answers on 127.0.0.1, use it; otherwise
# install it from Debian's packages when missing and start it without systemd
# (containers have none). Then make sure the Postgres role and database
# `parkgate` (password `parkgate`) and the btree_gist extension exist. Safe to run
# again and again; quiet on success (one line per service, then the URLs).
#
# Usage: deploy/services.sh [--check] [--env] [--help]
#   --check  only report; exit 1 if anything is missing or down. Changes nothing.
#   --env    print only `export NAME=value` lines on stdout (status to stderr),
#            for: eval "$(deploy/services.sh --env)"
# Environment: PARKGATE_SERVICES_WAIT  seconds to wait for a service (default 30)
#              PGPASSWORD              postgres superuser password, only needed
#                                      when neither peer auth nor trust works
set -Eeuo pipefail

readonly PROG=services.sh
readonly HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379 MQTT_PORT=1883
readonly DB_NAME=parkgate DB_USER=parkgate DB_PASS=parkgate
readonly DATABASE_URL="postgres://${DB_USER}:${DB_PASS}@${HOST}:${PG_PORT}/${DB_NAME}?sslmode=disable"
readonly REDIS_URL="redis://${HOST}:${REDIS_PORT}/0"
readonly MQTT_URL="tcp://${HOST}:${MQTT_PORT}"
readonly WAIT_SECS=${PARKGATE_SERVICES_WAIT:-30}

DEPLOY_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" >/dev/null && pwd)
readonly DEPLOY_DIR
readonly MOSQUITTO_CONF=$DEPLOY_DIR/mosquitto/dev.conf
readonly MOSQUITTO_LOG=/var/log/mosquitto/parkgate-dev.log
readonly REDIS_LOG=/var/log/redis/parkgate-dev.log

# Debian keeps daemons and pg_* wrappers in sbin / lib paths a login shell may lack.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}
# pg_lsclusters & co. are Perl: an unset or ungenerated locale makes them noisy,
# and a cluster created here should be UTF8. C.UTF-8 is built into Debian 12's libc.
export LC_ALL=C.UTF-8 LANG=C.UTF-8
# Our psql calls say where to connect; stray PG* settings must not redirect them.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS
export PGCONNECT_TIMEOUT=5

MODE=setup ENV_ONLY=0
for arg in "$@"; do
  case $arg in
    --check) MODE=check ;;
    --env) ENV_ONLY=1 ;;
    -h | --help) sed -n '3,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) printf '%s: unknown argument %q (try --help)\n' "$PROG" "$arg" >&2; exit 2 ;;
  esac
done

LOG=$(mktemp "${TMPDIR:-/tmp}/parkgate-services.XXXXXX")
trap 'rm -f "$LOG"' EXIT
trap 'printf "%s: error: unexpected failure (line %s): %s\n" "$PROG" "$LINENO" "$BASH_COMMAND" >&2' ERR

die() {
  printf '%s: error: %s\n' "$PROG" "$1" >&2
  shift
  local f
  for f in "$@"; do # files whose tail explains the failure
    [[ -s $f ]] && { printf -- '--- last lines of %s:\n' "$f" >&2; tail -n 15 "$f" | sed 's/^/  /' >&2; }
  done
  exit 1
}
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
say() { # the one line per service
  if ((ENV_ONLY)); then printf '%-10s %s\n' "$1" "$2" >&2; else printf '%-10s %s\n' "$1" "$2"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }
need_root() { ((EUID == 0)) || die "must run as root to $1 (try: sudo $0)"; }

# --- probes ---------------------------------------------------------------------

tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

pg_up() {
  if have pg_isready; then
    pg_isready -q -h "$HOST" -p "$PG_PORT" -t 2
  else
    tcp_open "$HOST" "$PG_PORT"
  fi
}

redis_up() {
  if have redis-cli; then
    [[ $(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
  else # RESP by hand: PING -> +PONG
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && [[ $l == +PONG* ]]' \
      _ "$HOST" "$REDIS_PORT" 2>/dev/null
  fi
}

mqtt_up() { # an MQTT CONNECT that the broker accepts anonymously, as dev and tests need
  if have mosquitto_sub; then
    timeout 5 mosquitto_sub -h "$HOST" -p "$MQTT_PORT" -i "parkgate-probe-$$" -t parkgate/probe -E -W 4 \
      >/dev/null 2>&1
  else # MQTT 3.1.1 CONNECT (clean session, client id "pgprobe") -> CONNACK 20 02 00 00
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "\x10\x13\x00\x04MQTT\x04\x02\x00\x3c\x00\x07pgprobe" >&3
      ack=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n"); printf "\xe0\x00" >&3
      [[ $ack == 20020000 ]]' _ "$HOST" "$MQTT_PORT" 2>/dev/null
  fi
}

wait_for() { # wait_for PROBE: poll until it succeeds or WAIT_SECS pass
  local deadline=$((SECONDS + WAIT_SECS))
  until "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# --- installing -------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
  need_root "install $*"
  have apt-get || die "apt-get not found: install $* by hand (this script knows Debian only)"
  local apt=(apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 -qq)
  if ((!APT_UPDATED)); then
    APT_UPDATED=1
    "${apt[@]}" update >"$LOG" 2>&1 ||
      warn "apt-get update failed; trying the package lists at hand: $(grep -m1 -E '^(E|W):' "$LOG" || tail -n1 "$LOG")"
  fi
  # policy-rc.d in containers may forbid the postinst from starting services: fine,
  # this script starts them itself.
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" >"$LOG" 2>&1 9>&- ||
    die "apt-get install $* failed" "$LOG"
}

pg_version() { # newest installed server major version, or nothing
  local d v=
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [[ -x $d ]] || continue
    d=${d#/usr/lib/postgresql/} && d=${d%%/*}
    if [[ -z $v ]] || ((d > v)); then v=$d; fi
  done
  printf '%s' "$v"
}
pg_installed() { [[ -n $(pg_version) ]] && have pg_ctlcluster && have psql; }
pg_has_btree_gist() { [[ -f /usr/share/postgresql/$1/extension/btree_gist.control ]]; }

# --- starting ---------------------------------------------------------------------

pg_start() {
  local ver cluster status line
  # The cluster already configured on our port, if any (pg_lsclusters -h: ver name port status ...).
  line=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1, $2, $4; exit}')
  if [[ -n $line ]]; then
    read -r ver cluster status <<<"$line"
  else
    ver=$(pg_version) cluster=main status=down
    if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" {f=1} END {exit !f}'; then
      die "PostgreSQL cluster $ver/main exists but not on port $PG_PORT; set port = $PG_PORT in /etc/postgresql/$ver/main/postgresql.conf"
    fi
    pg_createcluster --locale C.UTF-8 --encoding UTF8 --port "$PG_PORT" "$ver" "$cluster" >"$LOG" 2>&1 ||
      die "pg_createcluster $ver $cluster failed" "$LOG"
  fi
  if [[ $status == online* ]]; then # running, yet not answering on 127.0.0.1
    wait_for pg_up || die "PostgreSQL $ver/$cluster runs but does not answer on $HOST:$PG_PORT; check listen_addresses in /etc/postgresql/$ver/$cluster/postgresql.conf"
    return
  fi
  # The socket directory lives on /run, which a container may start empty.
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start >"$LOG" 2>&1 9>&- ||
    die "pg_ctlcluster $ver $cluster start failed" "$LOG" "/var/log/postgresql/postgresql-$ver-$cluster.log"
  wait_for pg_up || die "PostgreSQL $ver/$cluster did not answer on $HOST:$PG_PORT within ${WAIT_SECS}s" \
    "/var/log/postgresql/postgresql-$ver-$cluster.log"
}

redis_start() {
  # Nothing is kept on disk (--save "", no AOF): tests want a clean, fast cache.
  local args=(--daemonize yes --bind "$HOST" -::1 --port "$REDIS_PORT" --save "" --appendonly no --dir /tmp)
  [[ -d /var/lib/redis ]] && args+=(--dir /var/lib/redis)
  [[ -d ${REDIS_LOG%/*} ]] && args+=(--logfile "$REDIS_LOG")
  redis-server "${args[@]}" >"$LOG" 2>&1 9>&- || die "redis-server failed to start" "$LOG"
  wait_for redis_up || die "Redis did not answer on $HOST:$REDIS_PORT within ${WAIT_SECS}s" "$LOG" "$REDIS_LOG"
}

mqtt_start() {
  [[ -r $MOSQUITTO_CONF ]] || die "missing $MOSQUITTO_CONF"
  # As root, mosquitto drops to the `mosquitto` user: it must be able to write these.
  local owner=root
  id mosquitto >/dev/null 2>&1 && owner=mosquitto
  install -d -o "$owner" -m 0755 /var/lib/mosquitto "${MOSQUITTO_LOG%/*}"
  mosquitto -d -c "$MOSQUITTO_CONF" >"$LOG" 2>&1 9>&- || die "mosquitto -d -c $MOSQUITTO_CONF failed" "$LOG"
  wait_for mqtt_up || die "Mosquitto did not answer on $HOST:$MQTT_PORT within ${WAIT_SECS}s" "$LOG" "$MOSQUITTO_LOG"
}

# ensure NAME PROBE START INSTALLED PORT: sets STATE[NAME] to what was done.
declare -A STATE JUST_INSTALLED
ensure() {
  local name=$1 probe=$2 start=$3 installed=$4 port=$5
  if "$probe"; then
    STATE[$name]="already running"
    [[ -n ${JUST_INSTALLED[$name]:-} ]] && STATE[$name]="installed; its package started it"
    return 0
  fi
  if [[ $MODE == check ]]; then
    STATE[$name]=down
    return 0
  fi
  need_root "start $name"
  "$installed" || die "$name is not installed and was not installed by this run"
  # Something else on the port that does not speak the protocol (or wants a
  # password): starting ours would only fail to bind, so say so plainly.
  if [[ $name != postgres ]] && tcp_open "$HOST" "$port"; then
    die "$name: something listens on $HOST:$port but does not answer as an anonymous $name client; stop it or free the port"
  fi
  "$start"
  STATE[$name]=started
  [[ -n ${JUST_INSTALLED[$name]:-} ]] && STATE[$name]="installed and started"
  return 0
}

redis_installed() { have redis-server; }
mqtt_installed() { have mosquitto; }

# --- postgres role, database, extension ---------------------------------------------

PG_SUPER=
pg_super() { # psql as a superuser, with our database as $1 and SQL on stdin or in -c
  local db=$1
  shift
  local opts=(-X -q -w -v ON_ERROR_STOP=1 -d "$db")
  if [[ $PG_SUPER == socket ]]; then
    (cd / && PGOPTIONS='-c client_min_messages=warning' runuser -u postgres -- psql -p "$PG_PORT" "${opts[@]}" "$@")
  else
    PGOPTIONS='-c client_min_messages=warning' psql -h "$HOST" -p "$PG_PORT" -U postgres "${opts[@]}" "$@"
  fi
}

pg_pick_super() {
  # 1. The socket as the postgres OS user: peer auth on stock Debian, trust elsewhere.
  if ((EUID == 0)) && id postgres >/dev/null 2>&1 && have runuser; then
    PG_SUPER=socket
    [[ $(pg_super postgres -Atc 'select rolsuper from pg_roles where rolname = current_user' 2>/dev/null) == t ]] && return
  fi
  # 2. TCP as postgres: trust on 127.0.0.1, or PGPASSWORD.
  PG_SUPER=tcp
  [[ $(pg_super postgres -Atc 'select rolsuper from pg_roles where rolname = current_user' 2>"$LOG") == t ]]
}

pg_setup() {
  if ! pg_pick_super; then
    # Not root and no trust auth: fine if everything is already in place.
    pg_check && return
    die "cannot reach PostgreSQL as a superuser to create role/database $DB_NAME: tried the
  socket as OS user postgres (needs root) and psql -h $HOST -U postgres (set PGPASSWORD
  if it needs a password)" "$LOG"
  fi
  # btree_gist in template1 first, so the parkgate database and any database a test
  # creates later start with it. (A connection to template1 blocks CREATE DATABASE
  # for its few milliseconds; the statement is a no-op when the extension exists.)
  pg_super template1 -c 'CREATE EXTENSION IF NOT EXISTS btree_gist' >"$LOG" 2>&1 ||
    die "CREATE EXTENSION btree_gist in template1 failed (is postgresql-contrib installed?)" "$LOG"
  # Role: always (re)set the password and attributes so DATABASE_URL works even if
  # someone changed them; CREATEDB lets tests make their own databases. Then the
  # database (CREATE DATABASE cannot run in a DO block, hence \gexec).
  pg_super postgres >"$LOG" 2>&1 <<SQL || die "creating role and database $DB_NAME failed" "$LOG"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS';
  END IF;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER %I', '$DB_NAME', '$DB_USER')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME')
\gexec
ALTER DATABASE $DB_NAME OWNER TO $DB_USER;
SQL
  # As superuser: works even where btree_gist is not trusted. It is trusted (PG13+),
  # so the parkgate role could create it in a fresh database by itself too.
  pg_super "$DB_NAME" -c 'CREATE EXTENSION IF NOT EXISTS btree_gist' >"$LOG" 2>&1 ||
    die "CREATE EXTENSION btree_gist in $DB_NAME failed" "$LOG"
}

# pg_check: prove DATABASE_URL itself works (password over TCP) and sees btree_gist.
PG_DETAIL=
pg_check() {
  have psql || { PG_DETAIL="psql not installed, cannot check $DB_NAME"; return 1; }
  local out
  out=$(psql "$DATABASE_URL" -X -Atqw -F ' ' -c "
    SELECT e.extversion, (SELECT bool_or(trusted) FROM pg_available_extension_versions WHERE name = 'btree_gist'),
           pg_encoding_to_char(d.encoding), current_setting('server_version_num')::int / 10000
      FROM pg_extension e, pg_database d
     WHERE e.extname = 'btree_gist' AND d.datname = current_database()" 2>"$LOG") || {
    PG_DETAIL="cannot connect as $DB_USER: $(head -n1 "$LOG")"
    return 1
  }
  [[ -n $out ]] || { PG_DETAIL="database $DB_NAME has no btree_gist extension"; return 1; }
  local ext trusted enc ver
  read -r ext trusted enc ver <<<"$out"
  [[ $enc == UTF8 ]] || warn "database $DB_NAME has encoding $enc, not UTF8"
  [[ $trusted == t ]] || warn "btree_gist is not a trusted extension here: only a superuser can create it"
  PG_DETAIL="PostgreSQL $ver, role+db $DB_USER, btree_gist $ext"
}

# --- build tools --------------------------------------------------------------------

# missing_tools ARRAY: appends to ARRAY the Debian packages of the build tools
# that are missing. gcc: `go test -race` needs cgo ("-race requires cgo");
# git: go modules fetched directly and the build's VCS stamp; ca-certificates:
# the Go module proxy over TLS; curl: fetching Go and stripe-mock by hand;
# chromium: the people's pages driven in a real browser (cloud/httpapi's
# browser tests, through chromedp).
missing_tools() {
  local -n out=$1
  have gcc || out+=(gcc libc6-dev)
  have chromium || out+=(chromium)
  have make || out+=(make)
  have git || out+=(git)
  have curl || out+=(curl)
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || out+=(ca-certificates)
  return 0
}

tools_line() { # the one line about the build tools, after setup or in --check
  local missing=()
  missing_tools missing
  local gov=
  have go && gov=$(go env GOVERSION 2>/dev/null)
  if ((${#missing[@]})); then
    say tools "MISSING  packages ${missing[*]}${gov:+; $gov}"
    return 1
  fi
  if [[ -z $gov ]]; then
    say tools "MISSING  go (1.26 from go.dev; Debian's golang package is older); gcc make git curl chromium ok"
    return 1
  fi
  say tools "ok       $gov, gcc make git curl ca-certificates chromium"
}

# --- main ---------------------------------------------------------------------------

if [[ $MODE == setup ]]; then
  # Two runs at once (a developer and CI, say) would race on apt and on starting daemons.
  # Fd 9 holds the lock: everything started below gets `9>&-`, or a daemon would
  # inherit it and hold the lock for its whole life.
  lockdir=/run/lock
  [[ -d $lockdir && -w $lockdir ]] || lockdir=${TMPDIR:-/tmp}
  lock=$lockdir/parkgate-services.lock
  # Read-only is enough for flock, and all a non-root user gets on root's lock file.
  if ! { exec 9>>"$lock"; } 2>/dev/null; then exec 9<"$lock"; fi
  flock -w 300 9 || die "another services.sh has held $lock for 5 minutes"

  # Install what is missing in one apt-get run, so `apt-get update` happens at most once.
  pkgs=()
  # Without root the tools line below names what is missing instead: a
  # developer whose services run needs no root for them.
  if ((EUID == 0)); then missing_tools pkgs; fi
  if ! pg_up && ! pg_installed; then pkgs+=(postgresql) JUST_INSTALLED[postgres]=1; fi
  if pg_up && ! have psql; then pkgs+=(postgresql-client); fi
  if ! redis_up && ! redis_installed; then pkgs+=(redis-server) JUST_INSTALLED[redis]=1; fi
  if ! mqtt_up && ! mqtt_installed; then pkgs+=(mosquitto mosquitto-clients) JUST_INSTALLED[mosquitto]=1; fi
  ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
  # Debian 12 ships btree_gist in postgresql-15 itself; other layouts need -contrib.
  pgver=$(pg_version)
  if [[ -n $pgver ]] && ! pg_has_btree_gist "$pgver"; then apt_install postgresql-contrib; fi
fi

ensure postgres pg_up pg_start pg_installed "$PG_PORT"
ensure redis redis_up redis_start redis_installed "$REDIS_PORT"
ensure mosquitto mqtt_up mqtt_start mqtt_installed "$MQTT_PORT"

failed=0
if [[ ${STATE[postgres]} == down ]]; then
  say postgres "DOWN     $HOST:$PG_PORT  does not answer"
  failed=1
else
  [[ $MODE == setup ]] && pg_setup
  if pg_check; then
    say postgres "ok       $HOST:$PG_PORT  ${STATE[postgres]}; $PG_DETAIL"
  else
    [[ $MODE == setup ]] && die "postgres: DATABASE_URL does not work after setup: $PG_DETAIL"
    say postgres "MISSING  $HOST:$PG_PORT  answers, but $PG_DETAIL"
    failed=1
  fi
fi
for svc in redis:$REDIS_PORT mosquitto:$MQTT_PORT; do
  name=${svc%%:*} port=${svc#*:}
  if [[ ${STATE[$name]} == down ]]; then
    say "$name" "DOWN     $HOST:$port  does not answer"
    failed=1
  else
    say "$name" "ok       $HOST:$port  ${STATE[$name]}"
  fi
done

# A missing Go is reported, not fatal: the services are ready all the same.
if ! tools_line && [[ $MODE == check ]]; then failed=1; fi

if ((ENV_ONLY)); then
  printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\nexport MQTT_URL=%q\n' "$DATABASE_URL" "$REDIS_URL" "$MQTT_URL"
elif ((!failed)); then
  printf 'DATABASE_URL=%s\nREDIS_URL=%s\nMQTT_URL=%s\n' "$DATABASE_URL" "$REDIS_URL" "$MQTT_URL"
fi
exit "$failed"
