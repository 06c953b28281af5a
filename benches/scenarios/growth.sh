#!/usr/bin/env bash
# Growth scenario (issue 14, "Memory and growth"): grows a fresh `cairnd dev`
# through the sequencer's bulk path (`cairn-grow`, benches/grow.rs) and
# reports at each milestone the log's resident memory and high-water mark,
# disk bytes per leaf and inclusion-proof latency; then restarts the log and
# reports how long it took to get ready and its memory after the restart.
#
#   benches/scenarios/growth.sh [--sizes 100000,1000000,10000000]
#
# Keeps the log's output and data in a temporary directory (printed at the
# end; the data of 10^7 leaves is a few GiB). Needs python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

sizes=100000,1000000
while (($#)); do
    case "$1" in
        --sizes) sizes="$2"; shift ;;
        *) echo "usage: $0 [--sizes N,N,...]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --locked --bin cairnd --bin cairn-grow >&2
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
source benches/scenarios/common.sh
port=$(free_port)
grpc=$(free_port)

# Starts the log on $work/data and waits (bounded) until it is ready; sets
# $pid and $ready_s, the seconds that took.
start_log() {
    local started=$SECONDS
    "$bin/cairnd" dev --data-dir "$work/data" --listen "127.0.0.1:$port" \
        --grpc-listen "127.0.0.1:$grpc" >>"$work/log.txt" 2>&1 &
    pid=$!
    wait_ready "$port" "$work/log.txt"
    ready_s=$((SECONDS - started))
}

rss_mib() {
    awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"
}

start_log
"$bin/cairn-grow" --sequencer "http://127.0.0.1:$grpc" --log "http://127.0.0.1:$port/dev/" \
    --pid "$pid" --data-dir "$work/data" --report-at "$sizes"

kill "$pid"
wait "$pid" 2>/dev/null || true
start_log
echo "restart: ready after ${ready_s} s, RSS $(rss_mib) MiB; 10 s later $(sleep 10; rss_mib) MiB" >&2
echo "log output and data: $work" >&2
