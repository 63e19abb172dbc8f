#!/bin/bash
# GET latency while a client sends INFO (every section, keyspace included) every 100 ms, as
# ioredis does on each connect: kura next to redis-server (--appendonly yes --appendfsync
# everysec) on the same machine, one after the other. Each server is loaded first with
# `redis-benchmark -t set -n 300000 -r 200000 -P 16` (about 155,000 keys), then the time of
# the first INFO keyspace is printed, then redis-benchmark's GET summary (-c 20 -n 60000).
#
#   benches/info_while_serving.sh [path/to/kura]      (default: target/release/kura)
set -u
KURA=${1:-target/release/kura}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

run() { # name, port, start command...
  local name=$1 port=$2; shift 2
  "$@" > "$DIR/$name.log" 2>&1 &
  local pid=$!
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
  redis-benchmark -p "$port" -c 20 -n 300000 -r 200000 -P 16 -q -t set >/dev/null 2>&1
  local s e; s=$(date +%s%N); redis-cli -p "$port" info keyspace >/dev/null; e=$(date +%s%N)
  echo "$name: first INFO keyspace $(( (e - s) / 1000000 )) ms"
  ( while kill -0 "$pid" 2>/dev/null; do redis-cli -p "$port" info >/dev/null 2>&1; sleep 0.1; done ) &
  local infos=$!
  redis-benchmark -p "$port" -c 20 -n 60000 -r 200000 -t get > "$DIR/get.out" 2>&1
  tr '\r' '\n' < "$DIR/get.out" | grep -A3 "throughput summary" | sed -n '1p;3p;4p'
  kill "$infos" "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

run kura 17900 "$KURA" --listen 127.0.0.1:17900 --cluster-listen 127.0.0.1:17901 \
  --metrics-listen 127.0.0.1:17902 --data-dir "$DIR/kura"
mkdir -p "$DIR/redis"
run redis-server 17903 redis-server --port 17903 --bind 127.0.0.1 --dir "$DIR/redis" \
  --appendonly yes --appendfsync everysec --save ''
