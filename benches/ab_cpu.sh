#!/bin/bash
# CPU per request of two kura builds, in alternating pairs (issue 23's "record CPU time per
# request ... before and after each change": stable where throughput is not).
#
#   benches/ab_cpu.sh OLD_BIN NEW_BIN TEST PIPELINE REQUESTS PAIRS [PRE_TEST]
#   benches/ab_cpu.sh /tmp/kura.before target/release/kura get 16 1000000 8 set
#
# Each run starts a fresh one-node kura on a fresh data dir, runs PRE_TEST (200,000 requests
# -P 16) when given, then `redis-benchmark -t TEST -P PIPELINE -c 50 -r 100000 -n REQUESTS`,
# and prints the node's user+system CPU per request (from /proc/PID/stat). Pairs alternate
# which build runs first (ABBA...): the second run of a pair pays for the first's teardown (a
# killed node's memory freed, its data dir written back and deleted), which skews a fixed order.
set -euo pipefail
OLD=$1 NEW=$2 TEST=$3 P=$4 N=$5 PAIRS=$6 PRE=${7:-}
PORT=${AB_PORT:-7401}
TICK=$(getconf CLK_TCK)

run() {
    local bin=$1 dir pid t0 t1
    dir=$(mktemp -d /tmp/ab_cpu.XXXX)
    "$bin" server --listen 127.0.0.1:$PORT --cluster-listen 127.0.0.1:$((PORT + 1)) \
        --metrics-listen 127.0.0.1:$((PORT + 2)) --data-dir "$dir/k" > "$dir/log" 2>&1 &
    pid=$!
    until redis-cli -p $PORT PING > /dev/null 2>&1; do sleep 0.1; done
    if [ -n "$PRE" ]; then redis-benchmark -p $PORT -t "$PRE" -P 16 -c 50 -r 100000 -n 200000 -q > /dev/null; fi
    t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
    redis-benchmark -p $PORT -t "$TEST" -P "$P" -c 50 -r 100000 -n "$N" -q > /dev/null
    t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
    kill -9 $pid; wait $pid 2> /dev/null || true
    rm -rf "$dir"
    awk -v t="$((t1 - t0))" -v n="$N" -v hz="$TICK" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }'
}

old=() new=()
for i in $(seq 1 "$PAIRS"); do
    if [ $((i % 2)) -eq 1 ]; then a=$(run "$OLD"); b=$(run "$NEW"); else b=$(run "$NEW"); a=$(run "$OLD"); fi
    old+=("$a") new+=("$b")
    echo "pair $i: old $a  new $b  us of CPU per $TEST -P$P"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
lower=0
for i in "${!old[@]}"; do awk -v a="${old[$i]}" -v b="${new[$i]}" 'BEGIN { exit !(b < a) }' && lower=$((lower + 1)); done
echo "median old $(median "${old[@]}")  new $(median "${new[@]}")  new lower in $lower of $PAIRS pairs"
