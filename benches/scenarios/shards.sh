#!/usr/bin/env bash
# Sharding scenarios (issue 15): how add-leaf throughput grows with active
# shards, and what idle shards cost on a real cluster.
#
#   benches/scenarios/shards.sh [--nodes N] [--counts 1,2,4,8] [--duration S]
#   benches/scenarios/shards.sh --idle [--nodes N] [--counts 1,16,64] [--idle-seconds S]
#   benches/scenarios/shards.sh --wal [--counts 1,2,4,8,16,64]
#
# Load: for each count, a fresh `cairnd dev --nodes N --shards COUNT` (N
# sequencer processes, each hosting every shard's Raft group, plus the
# frontend, collector and witness processes), and one `cairn hammer` that
# spreads 256 closed-loop submitters over all the shards' URLs. Prints the
# aggregate add-leaf/s, its ratio to the one-shard figure and to this
# machine's one-thread Ed25519 verify rate (measured by the hammer in the
# same run), and the CPU seconds all the cluster's processes spent per leaf.
#
# Idle: the same clusters with no load: the RSS and CPU of each sequencer
# process over --idle-seconds, i.e. what N idle Raft groups (heartbeats to
# two followers every 100 ms each) cost a node.
#
# WAL: `cairn-wal` (benches/wal.rs) on this machine's disk: synced commits
# per second and CPU per commit with one RocksDB (one WAL) per shard, as
# Cairn runs today, and with one RocksDB per node (a column family per
# shard, one WAL for all).
set -euo pipefail
cd "$(dirname "$0")/../.."

nodes=3
counts=
duration=10
idle=false
wal=false
idle_seconds=20
while (($#)); do
    case "$1" in
        --nodes) nodes="$2"; shift ;;
        --counts) counts="$2"; shift ;;
        --duration) duration="$2"; shift ;;
        --idle) idle=true ;;
        --wal) wal=true ;;
        --idle-seconds) idle_seconds="$2"; shift ;;
        *) echo "usage: $0 [--idle|--wal] [--nodes N] [--counts N,N,...] [--duration S] [--idle-seconds S]" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$counts" ]; then
    if $idle; then counts=1,16,64; elif $wal; then counts=1,2,4,8,16,64; else counts=1,2,4,8; fi
fi

if $wal; then
    cargo build --release --locked -p cairn-benches --bin cairn-wal >&2
    IFS=, read -ra list <<<"$counts"
    for n in "${list[@]}"; do
        "${CARGO_TARGET_DIR:-target}/release/cairn-wal" --shards "$n" --seconds "$duration"
    done
    exit 0
fi

cargo build --release --locked --bin cairnd --bin cairn >&2
bin="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
out="${OUT:-$work/results}"
mkdir -p "$out"
source benches/scenarios/common.sh

# start_cluster COUNT: a fresh cluster with COUNT shards; sets $pid (the
# launcher), $port and $pids (every process of the cluster).
start_cluster() {
    local n=$1
    port=$(free_port)
    "$bin/cairnd" dev --nodes "$nodes" --shards "$n" --data-dir "$work/c$n" \
        --listen "127.0.0.1:$port" >"$work/c$n.log" 2>&1 &
    pid=$!
    # The launcher prints the base URLs once every group has a leader.
    for _ in $(seq 1 600); do
        if grep -q 'index of logs' "$work/c$n.log"; then break; fi
        if ! kill -0 "$pid" 2>/dev/null; then tail -30 "$work/c$n.log" >&2; exit 1; fi
        sleep 0.2
    done
    python3 - "$port" "$n" <<'PY'
import sys, time, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
names = ["dev"] + [f"dev{i}" for i in range(2, n + 1)]
deadline = time.time() + 120
for name in names:
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}/get-tree-head", timeout=2)
            break
        except Exception:
            if time.time() > deadline:
                sys.exit(f"shard {name} published no head")
            time.sleep(0.2)
PY
    pids=$(pgrep -P "$pid" | tr '\n' ' ')
}

stop_cluster() {
    cleanup
    pid=
}

urls() {
    local n=$1 args="--log http://127.0.0.1:$port/dev/"
    for i in $(seq 2 "$n"); do args="$args --log http://127.0.0.1:$port/dev$i/"; done
    echo "$args"
}

IFS=, read -ra list <<<"$counts"
if $idle; then
    printf '%8s %22s %14s %12s %14s\n' shards "sequencer RSS MiB" "MiB per shard" "CPU/node" "CPU per shard"
    for n in "${list[@]}"; do
        start_cluster "$n"
        seqs=$(for p in $pids; do
            if grep -q sequencer "/proc/$p/cmdline" 2>/dev/null; then echo "$p"; fi
        done | tr '\n' ' ')
        sleep 5
        python3 - "$n" "$idle_seconds" $seqs <<'PY'
import os, sys, time
n, seconds, pids = int(sys.argv[1]), float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
tick = os.sysconf("SC_CLK_TCK")
def cpu(p):
    fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick
def rss(p):
    for line in open(f"/proc/{p}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = {p: cpu(p) for p in pids}
time.sleep(seconds)
used = [100 * (cpu(p) - before[p]) / seconds for p in pids]
mem = [rss(p) for p in pids]
avg_cpu, avg_mem = sum(used) / len(used), sum(mem) / len(mem)
print("%8d %22s %14.2f %11.2f%% %13.3f%%" % (
    n, " ".join("%.0f" % m for m in mem), avg_mem / n, avg_cpu, avg_cpu / n))
PY
        stop_cluster
    done
    exit 0
fi

for n in "${list[@]}"; do
    start_cluster "$n"
    pid_args=$(for p in $pids; do echo -n " --pid $p"; done)
    # shellcheck disable=SC2046
    "$bin/cairn" hammer $(urls "$n") $pid_args --concurrency 256 --seed "$n" \
        --duration "$duration" --json >"$out/shards-$n.json"
    stop_cluster
done

python3 - "$out" "$nodes" <<'PY'
import json, pathlib, sys
rows = []
for f in pathlib.Path(sys.argv[1]).glob("shards-*.json"):
    n = int(f.stem.split("-")[1])
    rows.append((n, json.loads(f.read_text())))
rows.sort()
one = next((s["add_leaf_per_sec"] for n, s in rows if n == 1), None)
print(f"{sys.argv[2]} sequencer nodes; 256 submitters spread over the shards")
print(f"{'shards':>6} {'add-leaf/s':>10} {'÷1 shard':>9} {'÷verify':>8} {'→200 p50':>9} {'→200 p99':>9} {'CPU µs/leaf':>12}")
for n, s in rows:
    rate = s["add_leaf_per_sec"]
    cpu = s["log_cpu_s"]
    per_leaf = f"{1e6 * cpu / (rate * s['duration_s']):.0f}" if cpu and rate else "-"
    print(f"{n:6d} {rate:10.0f} {rate / one if one else 0:9.2f} {s['add_leaf_vs_verify']:8.3f} "
          f"{s['submit_to_200']['p50_ms']:8.1f}ms {s['submit_to_200']['p99_ms']:8.1f}ms {per_leaf:>12}")
v = [s["verify_per_sec"] for _, s in rows]
print(f"one-thread Ed25519 verifications/s in these runs: {min(v):.0f}–{max(v):.0f}")
PY
echo "JSON summaries: $out"
