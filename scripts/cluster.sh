#!/usr/bin/env bash
# A cluster-mode esdb on this machine's loopback: three nats-servers
# (JetStream, clustered) and N esdb-hosts in cluster mode, each process in
# the background with its data, config and log under DIR.
#
#   scripts/cluster.sh up --dir DIR [--nodes N] [--http-port PORT] [--build BUILD]
#                         [--nats-server BIN] [--timeout SECONDS]
#   scripts/cluster.sh down --dir DIR
#   scripts/cluster.sh status --dir DIR
#   scripts/cluster.sh restart --dir DIR NAME [--timeout SECONDS]
#
# Ports: node-i (i = 1..N) serves HTTP on PORT + 10*(i-1); nats-i (i = 1..3)
# listens above that: clients on PORT + 10*(i-1) + 1, routes + 2, monitoring
# + 3; node-i's gRPC (the grpc plugin) on + 4. Every process's line: `node NAME URL PID` / `nats NAME URL PID`
# (status adds the state: ready, starting, stopped). The configs are made
# from the templates in packaging/cluster/ (the packaged three-machine
# example comes from the same ones), the cluster-mode manifests are the
# build's share/esdb/cluster/*.json. The nats-servers admit only user
# "esdb" with a password made for DIR (DIR/nats-password; the configs that
# hold it are mode 0600). README.md, "Cluster mode", documents it.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd -P)
TEMPLATES=$REPO/packaging/cluster
NATS_COUNT=3

usage() {
  cat >&2 <<EOF
usage: $0 up --dir DIR [--nodes N] [--http-port PORT] [--build BUILD] [--nats-server BIN] [--timeout SECONDS]
       $0 down --dir DIR
       $0 status --dir DIR
       $0 restart --dir DIR NAME [--timeout SECONDS]
EOF
  exit 2
}
die() { echo "cluster.sh: $2" >&2; exit "$1"; }

# ---- arguments ----------------------------------------------------------------

[ $# -ge 1 ] || usage
COMMAND=$1; shift
case "$COMMAND" in up|down|status|restart) ;; -h|--help) usage ;; *) die 2 "unknown command '$COMMAND' (up, down, status, restart)" ;; esac

DIR="" NODES="" HTTP_PORT="" BUILD="" NATS_SERVER="" TIMEOUT=120 NAME=""
is_uint() { [[ "$1" =~ ^[0-9]{1,6}$ ]]; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dir|--nodes|--http-port|--build|--nats-server|--timeout)
      [ $# -ge 2 ] || die 2 "$1 needs a value"
      case "$1" in
        --dir) DIR=$2 ;;
        --nodes) NODES=$2 ;;
        --http-port) HTTP_PORT=$2 ;;
        --build) BUILD=$2 ;;
        --nats-server) NATS_SERVER=$2 ;;
        --timeout) TIMEOUT=$2 ;;
      esac
      shift 2 ;;
    -*) die 2 "unknown option '$1'" ;;
    *)
      [ "$COMMAND" = restart ] || die 2 "$COMMAND takes no name (got '$1')"
      [ -z "$NAME" ] || die 2 "restart takes one name (got '$NAME' and '$1')"
      NAME=$1; shift ;;
  esac
done
[ -n "$DIR" ] || die 2 "--dir DIR is required"
# The directory goes into JSON and nats-server configs: plain characters only.
[[ "$DIR" =~ ^[A-Za-z0-9._/+-]+$ ]] || die 2 "--dir '$DIR': only letters, digits and . _ / + - are allowed"
is_uint "$TIMEOUT" && [ "$TIMEOUT" -ge 1 ] || die 2 "--timeout '$TIMEOUT': must be a whole number of seconds, at least 1"
if [ "$COMMAND" != up ]; then
  for v in NODES HTTP_PORT BUILD NATS_SERVER; do
    [ -z "${!v}" ] || die 2 "$COMMAND: --$(tr 'A-Z_' 'a-z-' <<<"$v") is only for up (the cluster keeps its own)"
  done
fi
[ "$COMMAND" != restart ] || [ -n "$NAME" ] || die 2 "restart needs the NAME of a node or nats-server (e.g. node-2, nats-1)"

# ---- the cluster's settings (DIR/cluster.env) --------------------------------------

ENV_KEYS="nodes http_port build nats_server"
# Reads DIR/cluster.env (key=value lines written by up), checking each value.
read_env() {
  local file=$DIR/cluster.env k v
  [ -f "$file" ] || die 1 "$DIR holds no cluster (no cluster.env; start one with: $0 up --dir $DIR)"
  NODES="" HTTP_PORT="" BUILD="" NATS_SERVER=""
  while IFS='=' read -r k v; do
    case "$k" in
      nodes) NODES=$v ;; http_port) HTTP_PORT=$v ;; build) BUILD=$v ;; nats_server) NATS_SERVER=$v ;;
      *) die 1 "$file: unknown key '$k'" ;;
    esac
  done <"$file"
  for k in $ENV_KEYS; do
    local var; var=$(tr 'a-z' 'A-Z' <<<"$k")
    [ -n "${!var}" ] || die 1 "$file: '$k' is missing"
  done
  check_settings "$file"
}

# Validates NODES and HTTP_PORT; `what` names their source.
check_settings() {
  local what=$1
  is_uint "$NODES" && [ "$NODES" -ge 1 ] && [ "$NODES" -le 20 ] || die 2 "$what: nodes '$NODES': must be 1 to 20"
  local blocks=$(( NODES > NATS_COUNT ? NODES : NATS_COUNT ))
  is_uint "$HTTP_PORT" && [ "$HTTP_PORT" -ge 1024 ] && [ $(( HTTP_PORT + 10 * (blocks - 1) + 4 )) -le 65535 ] ||
    die 2 "$what: http port '$HTTP_PORT': must be 1024 or more, with room for $blocks blocks of 10 ports below 65536"
}

# What starting a process needs: the build's host and manifests, nats-server.
check_binaries() {
  local what=$1
  [ -x "$BUILD/bin/esdb-host" ] || die 1 "$what: no esdb-host in $BUILD/bin (build it: cmake --build $BUILD)"
  for f in store.json log.json; do
    [ -f "$BUILD/share/esdb/cluster/$f" ] || die 1 "$what: no $BUILD/share/esdb/cluster/$f (re-run cmake on $BUILD)"
  done
  [ -x "$NATS_SERVER" ] || die 1 "$what: nats-server '$NATS_SERVER' is not an executable (Debian: apt install nats-server)"
}

node_port() { echo $(( HTTP_PORT + 10 * ($1 - 1) )); }
nats_port() { echo $(( HTTP_PORT + 10 * ($1 - 1) + $2 )); }  # $2: 1 client, 2 route, 3 monitoring
grpc_port() { echo $(( HTTP_PORT + 10 * ($1 - 1) + 4 )); }    # node i's grpc plugin
all_names() {
  local i
  for (( i = 1; i <= NATS_COUNT; i++ )); do echo "nats-$i"; done
  for (( i = 1; i <= NODES; i++ )); do echo "node-$i"; done
}
# kind, index, URL and ready check of a process name; fails for an unknown one.
describe() {
  local name=$1
  if [[ "$name" =~ ^node-([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[1]}" -le "$NODES" ]; then
    KIND=node IDX=${BASH_REMATCH[1]}
    URL=http://127.0.0.1:$(node_port "$IDX")
    READY_URL=$URL/health/ready
  elif [[ "$name" =~ ^nats-([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[1]}" -le $NATS_COUNT ]; then
    KIND=nats IDX=${BASH_REMATCH[1]}
    URL=nats://127.0.0.1:$(nats_port "$IDX" 1)
    READY_URL=http://127.0.0.1:$(nats_port "$IDX" 3)/healthz
  else
    return 1
  fi
}

# ---- processes -----------------------------------------------------------------------

# The start time (clock ticks after boot, /proc/PID/stat field 22) of a live
# process; empty if there is none or it is a zombie.
start_time() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  rest=${stat##*) }            # after "pid (comm) "
  read -r -a f <<<"$rest"      # f[0] is field 3 (state)
  [ "${f[0]}" != Z ] && [ "${f[0]}" != X ] || return 0
  echo "${f[19]}"
}
# The PID of a process of the cluster if it still runs (the PID file's start
# time matches, so a reused PID is not taken for it); empty otherwise.
live_pid() {
  local file=$DIR/$1/pid pid started
  [ -f "$file" ] || return 0
  read -r pid started <"$file" || true
  is_uint "$pid" || return 0
  [ -n "$started" ] && [ "$(start_time "$pid")" = "$started" ] && echo "$pid"
  return 0
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
state_of() {
  local name=$1 pid
  describe "$name"
  pid=$(live_pid "$name")
  if [ -z "$pid" ]; then echo stopped
  elif [ "$(http_code "$READY_URL")" = 200 ]; then echo ready
  else echo starting
  fi
}
line() {  # line NAME [STATE]
  local name=$1 pid
  describe "$name"
  pid=$(live_pid "$name")
  echo "$KIND $name $URL ${pid:--}${2:+ $2}"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_of() {
  describe "$1"
  if [ "$KIND" = node ]; then node_port "$IDX"; grpc_port "$IDX"; else for k in 1 2 3; do nats_port "$IDX" "$k"; done; fi
}

# Starts process NAME in the background, in a session of its own (so the
# caller's terminal signals do not reach it), output appended to its log.
launch() {
  local name=$1 d=$DIR/$1 pid
  describe "$name"
  for p in $(ports_of "$name"); do
    ! port_in_use "$p" || die 1 "$name: port $p on 127.0.0.1 is in use by another process"
  done
  if [ "$KIND" = nats ]; then
    setsid "$NATS_SERVER" -c "$d/nats-server.conf" </dev/null >>"$d/nats-server.log" 2>&1 &
  else
    setsid "$BUILD/bin/esdb-host" --config "$d/esdb.json" </dev/null >>"$d/esdb-host.log" 2>&1 &
  fi
  pid=$!
  echo "$pid $(start_time "$pid")" >"$d/pid"
}

# Waits until NAME is ready; on timeout or exit says why (with its log's end).
wait_ready() {
  local name=$1 deadline=$2 pid log
  describe "$name"
  log=$DIR/$name/$([ "$KIND" = node ] && echo esdb-host.log || echo nats-server.log)
  while :; do
    pid=$(live_pid "$name")
    if [ -z "$pid" ]; then
      echo "cluster.sh: $name exited before it was ready; the end of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    [ "$(http_code "$READY_URL")" != 200 ] || return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "cluster.sh: $name (pid $pid) was not ready within $TIMEOUT s ($READY_URL); the end of $log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# SIGTERM by PID, then SIGKILL after 30 s.
stop_one() {
  local name=$1 pid i
  pid=$(live_pid "$name")
  [ -n "$pid" ] || { rm -f "$DIR/$name/pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < 300; i++ )); do
    [ -n "$(live_pid "$name")" ] || break
    sleep 0.1
  done
  if [ -n "$(live_pid "$name")" ]; then
    echo "cluster.sh: $name (pid $pid) did not stop within 30 s of SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while [ -n "$(live_pid "$name")" ]; do sleep 0.1; done
  fi
  rm -f "$DIR/$name/pid"
}

# Nodes first (they say goodbye over NATS), then the nats-servers.
stop_all() {
  local name
  for name in $(all_names | sort -r); do stop_one "$name"; done
}

# ---- the configs ---------------------------------------------------------------------

# The cluster's NATS password (user "esdb"): made once per DIR, 32 hex
# digits from /dev/urandom, kept in DIR/nats-password (mode 0600) so that
# "restart" writes the same configs again.
nats_password() {
  if [ ! -s "$DIR/nats-password" ]; then
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$DIR/nats-password.tmp") ||
      die 1 "cannot write $DIR/nats-password"
    mv "$DIR/nats-password.tmp" "$DIR/nats-password"
  fi
  cat "$DIR/nats-password"
}

# Fills template $1 into $2 with the @KEY@=value pairs that follow.
fill() {
  local template=$1 out=$2 expr=()
  shift 2
  while [ $# -gt 0 ]; do expr+=(-e "s|@$1@|$2|g"); shift 2; done
  (umask 077 && sed "${expr[@]}" "$template" >"$out.tmp")  # they hold the NATS password
  ! grep -q '@[A-Z_]*@' "$out.tmp" || die 1 "internal: $template has a key this script does not fill"
  mv "$out.tmp" "$out"
}

write_configs() {
  local i j urls="" routes password
  password=$(nats_password)
  for (( i = 1; i <= NATS_COUNT; i++ )); do
    urls+="${urls:+, }\"nats://127.0.0.1:$(nats_port "$i" 1)\""
  done
  for (( i = 1; i <= NATS_COUNT; i++ )); do
    mkdir -p "$DIR/nats-$i/jetstream"
    routes=""
    for (( j = 1; j <= NATS_COUNT; j++ )); do
      [ "$j" -eq "$i" ] || routes+="${routes:+, }nats-route://esdb:$password@127.0.0.1:$(nats_port "$j" 2)"
    done
    fill "$TEMPLATES/nats-server.conf.in" "$DIR/nats-$i/nats-server.conf" \
      NAME "nats-$i" CLIENT_LISTEN "127.0.0.1:$(nats_port "$i" 1)" MONITOR_LISTEN "127.0.0.1:$(nats_port "$i" 3)" \
      STORE_DIR "$DIR/nats-$i/jetstream" ROUTE_LISTEN "127.0.0.1:$(nats_port "$i" 2)" ROUTES "$routes" \
      NATS_USER esdb NATS_PASSWORD "$password"
  done
  for (( i = 1; i <= NODES; i++ )); do
    local d=$DIR/node-$i
    mkdir -p "$d/manifests" "$d/data"
    for p in persistence notification cluster gateway grpc; do
      cp "$REPO/plugins/$p/manifest.json" "$d/manifests/$p.json"
    done
    cp "$BUILD/share/esdb/cluster/store.json" "$BUILD/share/esdb/cluster/log.json" "$d/manifests/"
    fill "$TEMPLATES/esdb.json.in" "$d/esdb.json" \
      NODE "node-$i" DATA_DIR "$d/data" MANIFESTS_DIR "$d/manifests" PLUGIN_DIR "$BUILD/bin/plugins" \
      HTTP_ADDRESS 127.0.0.1 HTTP_PORT "$(node_port "$i")" GRPC_PORT "$(grpc_port "$i")" NATS_URLS "$urls" EXPECTED_NODES "$NODES" \
      NATS_USER esdb NATS_PASSWORD "$password"
  done
}

# ---- commands ------------------------------------------------------------------------

cmd_up() {
  mkdir -p "$DIR" || die 1 "cannot create $DIR"
  DIR=$(cd "$DIR" && pwd -P)
  local name deadline
  if [ -f "$DIR/cluster.env" ]; then
    # Up again on the data it has: its own settings, none given differently.
    local want_nodes=$NODES want_port=$HTTP_PORT want_build=$BUILD want_nats=$NATS_SERVER
    read_env
    [ -z "$want_nodes" ] || [ "$want_nodes" = "$NODES" ] || die 2 "$DIR is a cluster of $NODES nodes, not $want_nodes"
    [ -z "$want_port" ] || [ "$want_port" = "$HTTP_PORT" ] || die 2 "$DIR's cluster serves from port $HTTP_PORT, not $want_port"
    [ -z "$want_build" ] || [ "$(cd "$want_build" 2>/dev/null && pwd -P)" = "$BUILD" ] || die 2 "$DIR's cluster runs $BUILD, not $want_build"
    [ -z "$want_nats" ] || [ "$want_nats" = "$NATS_SERVER" ] || die 2 "$DIR's cluster runs $NATS_SERVER, not $want_nats"
    for name in $(all_names); do
      [ -z "$(live_pid "$name")" ] || die 1 "$DIR's cluster is up already ($name runs, pid $(live_pid "$name")); see: $0 status --dir $DIR"
    done
    check_binaries "$DIR/cluster.env"
  else
    [ -z "$(ls -A "$DIR")" ] || die 1 "$DIR is not empty and holds no cluster (no cluster.env): give an empty or new directory"
    NODES=${NODES:-3} HTTP_PORT=${HTTP_PORT:-2113} NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
    BUILD=${BUILD:-$REPO/build}
    [ -d "$BUILD" ] || die 1 "--build '$BUILD' is not a directory"
    BUILD=$(cd "$BUILD" && pwd -P)
    check_settings "arguments"
    check_binaries "arguments"
    write_configs
    printf 'nodes=%s\nhttp_port=%s\nbuild=%s\nnats_server=%s\n' "$NODES" "$HTTP_PORT" "$BUILD" "$NATS_SERVER" \
      >"$DIR/cluster.env"
  fi
  for name in $(all_names); do
    for p in $(ports_of "$name"); do
      ! port_in_use "$p" || die 1 "port $p on 127.0.0.1 ($name) is in use by another process; choose another --http-port"
    done
  done
  # Nothing half-started: a failure stops what this started.
  trap 'stop_all' EXIT
  deadline=$(( SECONDS + TIMEOUT ))
  for (( i = 1; i <= NATS_COUNT; i++ )); do launch "nats-$i"; done
  for (( i = 1; i <= NATS_COUNT; i++ )); do wait_ready "nats-$i" "$deadline" || die 1 "up failed; stopped what it started"; done
  for (( i = 1; i <= NODES; i++ )); do launch "node-$i"; done
  for (( i = 1; i <= NODES; i++ )); do wait_ready "node-$i" "$deadline" || die 1 "up failed; stopped what it started"; done
  trap - EXIT
  for name in $(all_names); do line "$name"; done
}

cmd_down() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd -P) || die 1 "no directory $DIR"
  read_env
  stop_all
  local name
  for name in $(all_names); do line "$name" stopped; done
}

cmd_status() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd -P) || die 1 "no directory $DIR"
  read_env
  local name
  for name in $(all_names); do line "$name" "$(state_of "$name")"; done
}

cmd_restart() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd -P) || die 1 "no directory $DIR"
  read_env
  describe "$NAME" || die 2 "no process '$NAME' in $DIR's cluster (its names: $(echo $(all_names)))"
  local pid
  pid=$(live_pid "$NAME")
  [ -z "$pid" ] || die 1 "$NAME runs (pid $pid): stop or kill it before restarting it"
  check_binaries "$DIR/cluster.env"
  launch "$NAME"
  if ! wait_ready "$NAME" $(( SECONDS + TIMEOUT )); then
    stop_one "$NAME"
    die 1 "restart of $NAME failed; stopped it again"
  fi
  line "$NAME"
}

case "$COMMAND" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) cmd_restart ;;
esac
