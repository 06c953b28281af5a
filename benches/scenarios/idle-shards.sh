#!/usr/bin/env bash
# Idle-shard scenario (issue 15, multi-Raft): the RSS and CPU of one
# process hosting N idle shards the way a sequencer node hosts them
# (`cairn-idle-shards`, benches/idle_shards.rs), each count in a fresh
# process so that one run's memory does not carry into the next.
#
#   benches/scenarios/idle-shards.sh [--counts 1,10,100] [--idle SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."

counts=1,10,100
idle=20
while (($#)); do
    case "$1" in
        --counts) counts="$2"; shift ;;
        --idle) idle="$2"; shift ;;
        *) echo "usage: $0 [--counts N,N,...] [--idle SECONDS]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --locked -p cairn-benches --bin cairn-idle-shards >&2
bin="${CARGO_TARGET_DIR:-target}/release"
printf '%8s %9s %10s %14s %10s %14s\n' shards "ready s" "RSS MiB" "MiB per shard" "idle CPU" "CPU per shard"
IFS=, read -ra list <<<"$counts"
for n in "${list[@]}"; do
    "$bin/cairn-idle-shards" --shards "$n" --idle "$idle" --json 2>/dev/null |
        python3 -c '
import json, sys
s = json.load(sys.stdin)
print("%8d %9.1f %10.1f %14.2f %9.2f%% %13.3f%%" % (
    s["shards"], s["start_s"], s["rss_idle_mib"], s["rss_per_shard_mib"],
    s["idle_cpu_percent"], s["idle_cpu_per_shard_percent"]))'
done
