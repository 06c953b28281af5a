#!/usr/bin/env bash
# Load scenarios: `cairn hammer` against a fresh `cairnd dev` (and, with
# --cluster, the local 3-node cluster of `cairnd dev --nodes 3`), each
# figure printed next to this machine's one-thread Ed25519 verify rate,
# measured by the hammer in the same run (docs/performance.md).
#
#   benches/scenarios/hammer.sh [--cluster] [--duration SECONDS]
#
# Writes every run's JSON summary to $OUT (default: a temporary directory,
# printed at the end). Needs python3 for the table. CAIRND=/path/to/cairnd
# runs another build of the log under the same hammer (a before/after).
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=false
duration=10
while (($#)); do
    case "$1" in
        --cluster) cluster=true ;;
        --duration) duration="$2"; shift ;;
        *) echo "usage: $0 [--cluster] [--duration SECONDS]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --locked --bin cairnd --bin cairn >&2
bin="${CARGO_TARGET_DIR:-target}/release"
cairnd="${CAIRND:-$bin/cairnd}"
work=$(mktemp -d)
out="${OUT:-$work/results}"
mkdir -p "$out"
source benches/scenarios/common.sh

# Starts the log under test in $work/$1 and waits (bounded) until it is
# ready; sets $pid and $base.
start_log() {
    local name=$1 port
    port=$(free_port)
    if $cluster && [ "$name" = cluster ]; then
        "$cairnd" dev --nodes 3 --data-dir "$work/$name" --listen "127.0.0.1:$port" \
            >"$work/$name.log" 2>&1 &
    else
        "$cairnd" dev --data-dir "$work/$name" --listen "127.0.0.1:$port" \
            >"$work/$name.log" 2>&1 &
    fi
    pid=$!
    base="http://127.0.0.1:$port/dev/"
    wait_ready "$port" "$work/$name.log"
}

stop_log() {
    cleanup
    pid=
}

# run NAME ARGS...: one hammer run, its JSON kept as $out/NAME.json.
run() {
    local name=$1
    shift
    "$bin/cairn" hammer --log "$base" --duration "$duration" --json "$@" >"$out/$name.json"
}

start_log dev
for c in 16 64 256; do
    run "dev-write-c$c" --concurrency "$c" --seed "$c" --pid "$pid"
done
run dev-read-inclusion --concurrency 4 --readers 64 --read-mix inclusion --seed 1000 --pid "$pid"
run dev-read-tree-head --concurrency 4 --readers 64 --read-mix tree-head --seed 1001 --pid "$pid"
run dev-read-tile --concurrency 4 --readers 64 --read-mix tile --seed 1002 --pid "$pid"
stop_log

if $cluster; then
    start_log cluster
    for c in 64 256; do
        run "cluster-write-c$c" --concurrency "$c" --seed "$c"
    done
    stop_log
fi

python3 - "$out" <<'PY'
import json, pathlib, sys
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    s = json.loads(f.read_text())
    v = s["verify_per_sec"]
    rows.append((f.stem, s, v))
print(f"{'scenario':24} {'add-leaf/s':>10} {'÷verify':>8} {'→200 p50':>9} {'→200 p99':>9} {'reads/s':>9} {'÷verify':>8} {'log CPU':>8}")
for name, s, v in rows:
    reads = sum(r["per_sec"] for r in s["reads"].values())
    cpu = s["log_cpu_s"]
    cpu = f"{100 * cpu / s['duration_s']:.0f}%" if cpu is not None else "-"
    if s.get("leaves_ran_out"):
        name += " (ran out)"
    print(f"{name:24} {s['add_leaf_per_sec']:10.0f} {s['add_leaf_vs_verify']:8.3f} "
          f"{s['submit_to_200']['p50_ms']:8.1f}ms {s['submit_to_200']['p99_ms']:8.1f}ms "
          f"{reads:9.0f} {reads / v if v else 0:8.3f} {cpu:>8}")
print(f"one-thread Ed25519 verifications/s in these runs: "
      f"{min(v for _, _, v in rows):.0f}–{max(v for _, _, v in rows):.0f}")
PY
echo "JSON summaries: $out"
