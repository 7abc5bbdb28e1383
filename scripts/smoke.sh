#!/usr/bin/env bash
# Smoke test for an nsqlookupd: ours (binary or `deno run`) or the Go one.
#
#   scripts/smoke.sh [options] [--] DAEMON_COMMAND [ARG...]
#       Starts DAEMON_COMMAND with --tcp-address, --http-address and
#       --broadcast-address appended (port 0 = any free port, unless given),
#       reads the ports from its `TCP/HTTP: listening on` log lines, waits for
#       GET /ping, registers a fake nsqd over TCP, checks GET /lookup, sends
#       SIGTERM and requires exit code 0.
#   scripts/smoke.sh [options] --tcp-port N --http-port N
#       Checks a daemon that is already running (no start, no SIGTERM).
#
# Options (or environment variables):
#   --host H          SMOKE_HOST       address to listen on / connect to (127.0.0.1)
#   --tcp-port N      SMOKE_TCP_PORT   TCP port (default 0 when starting a daemon)
#   --http-port N     SMOKE_HTTP_PORT  HTTP port (default 0 when starting a daemon)
#   --timeout S       SMOKE_TIMEOUT    seconds to wait for each step (10)
#   SMOKE_NO_CURL=1   use bash's /dev/tcp even when curl is installed
#
# Prints one `smoke: ok: ...` line per check; on the first failure prints
# `smoke: FAIL: ...` (and the daemon's log when it started one) and exits 1.
# Needs bash >= 4 and, for HTTP, curl or bash's /dev/tcp.

set -uo pipefail
export LC_ALL=C

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; }

host=${SMOKE_HOST:-127.0.0.1}
tcp_port=${SMOKE_TCP_PORT:-}
http_port=${SMOKE_HTTP_PORT:-}
timeout_s=${SMOKE_TIMEOUT:-10}
topic=smoke_topic
channel=smoke_channel
# What the fake nsqd announces: consumers would connect to 127.0.0.1:54150.
nsqd_tcp_port=54150
nsqd_http_port=54151

checks=0
pid=
tmp=
log=

ok() {
  checks=$((checks + 1))
  printf 'smoke: ok: %s\n' "$*"
}

fail() {
  printf 'smoke: FAIL: %s\n' "$*" >&2
  if [[ -n $log && -s $log ]]; then
    printf 'smoke: the daemon'\''s output (last 30 lines):\n' >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
  fi
  exit 1
}

cleanup() {
  exec 3<&- 4<&-
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  [[ -n $tmp ]] && rm -rf "$tmp"
}
trap cleanup EXIT
# A peer that hangs up makes writes fail (and be reported) instead of killing the script.
trap '' PIPE

set_option() {
  case $1 in
    --host) host=$2 ;;
    --tcp-port) tcp_port=$2 ;;
    --http-port) http_port=$2 ;;
    --timeout) timeout_s=$2 ;;
  esac
}

while (($# > 0)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --host | --tcp-port | --http-port | --timeout)
      (($# >= 2)) || fail "$1 needs a value"
      set_option "$1" "$2"
      shift 2
      ;;
    --host=* | --tcp-port=* | --http-port=* | --timeout=*) set_option "${1%%=*}" "${1#*=}"; shift ;;
    --) shift; break ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done

((BASH_VERSINFO[0] >= 4)) || fail "needs bash >= 4 (this is bash $BASH_VERSION)"
for value in "$tcp_port" "$http_port" "$timeout_s"; do
  [[ -z $value || $value =~ ^[0-9]+$ ]] || fail "not a number: '$value'"
done
((timeout_s > 0)) || fail "--timeout must be at least 1 second"
use_curl=0
if [[ -z ${SMOKE_NO_CURL:-} ]] && command -v curl >/dev/null 2>&1; then use_curl=1; fi
steps=$((timeout_s * 20)) # polling every 0.05 s

# ---- HTTP: sets http_status, http_headers, http_body; returns 1 with http_error set ----

http() {
  local method=$1 path=$2 raw line section=status
  http_status='' http_headers='' http_body='' http_error=''
  if ((use_curl)); then
    raw=$(curl -sS -i -X "$method" --max-time "$timeout_s" \
      -H 'Accept: application/vnd.nsq; version=1.0' "http://$host:$http_port$path" 2>&1) || {
      http_error=${raw:-curl failed}
      return 1
    }
  else
    if ! { exec 4<>"/dev/tcp/$host/$http_port"; } 2>/dev/null; then
      http_error="connection refused or unreachable"
      return 1
    fi
    printf '%s %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/vnd.nsq; version=1.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' \
      "$method" "$path" "$host" "$http_port" 2>/dev/null >&4
    raw=
    while IFS= read -r -t "$timeout_s" -u 4 line; do raw+=$line$'\n'; done
    local status=$?
    raw+=$line
    exec 4<&- 4>&-
    if ((status > 128)); then
      http_error="no complete answer within ${timeout_s}s"
      return 1
    fi
  fi
  while IFS= read -r line; do
    line=${line%$'\r'}
    case $section in
      status) http_status=${line#* } http_status=${http_status%% *} section=headers ;;
      headers) if [[ -z $line ]]; then section=body; else http_headers+=$line$'\n'; fi ;;
      body) http_body+=${http_body:+$'\n'}$line ;;
    esac
  done <<<"$raw"
  [[ -n $http_status ]] || { http_error="not an HTTP response: $raw"; return 1; }
}

# The value of response header $1 (names compare case-insensitively).
header() {
  local line lower name=${1,,}
  while IFS= read -r line; do
    lower=${line,,}
    if [[ ${lower%%:*} == "$name" ]]; then
      line=${line#*:}
      printf '%s' "${line# }"
      return
    fi
  done <<<"$http_headers"
}

# ---- TCP (protocol V1) on fd 3 ----

be32() {
  printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255))
}

# Reads one framed response from fd 3 into $frame; returns 1 with frame_error set.
read_frame() {
  local ch byte size=0 status
  frame='' frame_error=''
  for _ in 1 2 3 4; do
    IFS= read -r -d '' -n 1 -t "$timeout_s" -u 3 ch
    status=$?
    if ((status > 128)); then frame_error="no response within ${timeout_s}s"; return 1; fi
    if ((status != 0)); then frame_error="connection closed by the daemon"; return 1; fi
    if [[ -z $ch ]]; then byte=0; else printf -v byte '%d' "'$ch"; fi
    size=$((size * 256 + byte))
  done
  ((size == 0)) && return 0
  if ((size > 1048576)); then
    IFS= read -r -t 1 -u 3 ch
    frame_error="not a framed nsqlookupd response (starts with $(printf '%q' "${ch:0:40}"))"
    return 1
  fi
  IFS= read -r -N "$size" -t "$timeout_s" -u 3 frame || {
    frame_error="response cut short (expected $size bytes)"
    return 1
  }
}

# Sends command line $1 on fd 3 and expects the response $2.
tcp_command() {
  printf '%s\n' "$1" 2>/dev/null >&3 || fail "TCP $1: cannot send - connection lost"
  read_frame || fail "TCP $1: $frame_error"
  [[ $frame == "$2" ]] || fail "TCP $1: expected '$2', got '$frame'"
  ok "TCP $1 -> $frame"
}

# ---- 1. the daemon: start it, or check the one given ----

if (($# > 0)); then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsqlookupd-smoke.XXXXXX") || fail "cannot create a temporary directory"
  log=$tmp/daemon.log
  : >"$log" # exists before the background job opens it, so polling it never races
  args=("$@" "--tcp-address=$host:${tcp_port:-0}" "--http-address=$host:${http_port:-0}"
    "--broadcast-address=$host")
  printf 'smoke: starting: %s\n' "${args[*]}"
  "${args[@]}" </dev/null >"$log" 2>&1 &
  pid=$!
  tcp_port='' http_port=''
  for ((i = 0; i < steps; i++)); do
    tcp_port=$(sed -n 's/.*TCP: listening on [^"]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    http_port=$(sed -n 's/.*HTTP: listening on [^"]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
    [[ -n $tcp_port && -n $http_port ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      code=$?
      pid=
      fail "the daemon exited with code $code before logging 'TCP: listening on' and 'HTTP: listening on'"
    fi
    sleep 0.05
  done
  [[ -n $tcp_port && -n $http_port ]] ||
    fail "no 'TCP: listening on' / 'HTTP: listening on' log lines within ${timeout_s}s"
  ok "daemon started (pid $pid): TCP $host:$tcp_port, HTTP $host:$http_port"
else
  [[ -n $tcp_port && -n $http_port ]] ||
    fail "give a daemon command to start, or --tcp-port and --http-port of a running daemon (see --help)"
  printf 'smoke: checking the daemon at TCP %s:%s, HTTP %s:%s\n' "$host" "$tcp_port" "$host" "$http_port"
fi

# ---- 2. HTTP: /ping, /info ----

for ((i = 0; i < steps; i++)); do
  http GET /ping && [[ $http_status == 200 ]] && break
  if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then fail "the daemon exited while waiting for GET /ping"; fi
  sleep 0.05
done
[[ $http_status == 200 ]] ||
  fail "nothing answers GET /ping at http://$host:$http_port within ${timeout_s}s (${http_error:-status $http_status})"
[[ $http_body == OK ]] || fail "GET /ping: expected body 'OK', got '$http_body'"
ok "GET /ping -> 200 OK"

http GET /info || fail "GET /info: $http_error"
[[ $http_status == 200 && $http_body =~ ^\{\"version\":\"[0-9]+\.[0-9]+\.[0-9]+ ]] ||
  fail "GET /info: expected 200 and {\"version\":\"X.Y.Z\"}, got $http_status $http_body"
ok "GET /info -> $http_body"

# ---- 3. TCP: a fake nsqd registers ----

{ exec 3<>"/dev/tcp/$host/$tcp_port"; } 2>/dev/null || fail "cannot connect to the TCP port $host:$tcp_port"
identify='{"broadcast_address":"127.0.0.1","hostname":"smoke-nsqd","http_port":'$nsqd_http_port',"tcp_port":'$nsqd_tcp_port',"version":"1.3.0"}'
# shellcheck disable=SC2059 # be32 returns \x escapes for printf to turn into bytes
{ printf '  V1IDENTIFY\n' && printf "$(be32 ${#identify})" && printf '%s' "$identify"; } 2>/dev/null >&3 ||
  fail "TCP IDENTIFY: cannot send - connection lost"
read_frame || fail "TCP IDENTIFY: $frame_error"
if [[ -n $pid ]]; then
  # nsqd calls back the HTTP port the reply announces: it must be the one bound.
  [[ $frame == *"\"tcp_port\":$tcp_port,"* && $frame == *"\"http_port\":$http_port,"* ]] ||
    fail "TCP IDENTIFY: expected a reply announcing tcp_port $tcp_port and http_port $http_port, got '$frame'"
else
  # A running daemon may sit behind a port mapping: only the reply's shape is checked.
  [[ $frame =~ \"http_port\":[1-9][0-9]*, && $frame =~ \"tcp_port\":[1-9][0-9]*, ]] ||
    fail "TCP IDENTIFY: expected a JSON reply with tcp_port and http_port, got '$frame'"
fi
ok "TCP IDENTIFY -> $frame"
tcp_command "REGISTER $topic $channel" OK
tcp_command PING OK

# ---- 4. HTTP: /lookup finds it, as consumers would ----

http GET "/lookup?topic=$topic" || fail "GET /lookup?topic=$topic: $http_error"
[[ $http_status == 200 ]] || fail "GET /lookup?topic=$topic: expected status 200, got $http_status $http_body"
nsq_type=$(header X-NSQ-Content-Type)
[[ $nsq_type == "nsq; version=1.0" ]] ||
  fail "GET /lookup?topic=$topic: expected header 'X-NSQ-Content-Type: nsq; version=1.0' (go-nsq needs it), got '${nsq_type}'"
[[ $http_body == '{"channels":["'$channel'"],"producers":[{'* ]] ||
  fail "GET /lookup?topic=$topic: expected channel $channel and a producer, got $http_body"
[[ $http_body == *'"broadcast_address":"127.0.0.1","tcp_port":'$nsqd_tcp_port',"http_port":'$nsqd_http_port',"version":"1.3.0"'* ]] ||
  fail "GET /lookup?topic=$topic: expected the fake nsqd (127.0.0.1:$nsqd_tcp_port) among the producers, got $http_body"
ok "GET /lookup?topic=$topic -> 200, X-NSQ-Content-Type: $nsq_type, producer 127.0.0.1:$nsqd_tcp_port, channel $channel"

exec 3<&- 3>&-
for ((i = 0; i < steps; i++)); do
  http GET "/lookup?topic=$topic" && [[ $http_body == *'"producers":[]'* ]] && break
  sleep 0.05
done
[[ $http_body == *'"producers":[]'* ]] ||
  fail "the fake nsqd is still in /lookup ${timeout_s}s after closing its connection: $http_body"
ok "producer gone from /lookup after its TCP connection closed"

# ---- 5. SIGTERM: clean exit ----

if [[ -n $pid ]]; then
  kill -TERM "$pid" 2>/dev/null || fail "cannot send SIGTERM to pid $pid"
  for ((i = 0; i < steps; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && fail "the daemon did not exit within ${timeout_s}s of SIGTERM"
  wait "$pid"
  code=$?
  pid=
  ((code == 0)) || fail "the daemon exited with code $code after SIGTERM (expected 0)"
  ok "SIGTERM -> exit code 0"
fi

printf 'smoke: passed (%d checks)\n' "$checks"
