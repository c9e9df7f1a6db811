#!/usr/bin/env bash
# tools/bench.sh: measure escrowd (and NanoMDM side by side) and regenerate BENCHMARKS.md.
#
# Builds the release binary, starts `escrowd serve --http` on a fresh data directory on disk (SQLite), makes an
# operate API key for the commands workload, runs `escrowd bench` with the standard workloads against it (and
# against NanoMDM when a binary is found), writes BENCHMARKS.md at the repository root and the JSON report
# next to it (target/bench-report.json), then stops the server and deletes the data directory.
#
# Environment (all optional):
#   NANOMDM             path of a NanoMDM binary (default: `nanomdm` on PATH; none: escrowd alone)
#   BENCH_WORKLOADS     default idle,get,set,enroll,commands
#   BENCH_DEVICES       default 200        BENCH_CONCURRENCY  default 32
#   BENCH_DURATION      seconds per window, default 10
#   BENCH_PRESIGN       fresh bodies per consuming workload, default 100000 (a set window at ~10,000/s uses
#                       100,000 in 10 s; fewer end it early)
#   BENCH_PACED         also run each workload at this fraction of its peak (latency below peak), default 0.5;
#                       0 for none
#   BENCH_SKIP_BUILD=1  use the existing release binary
#   BENCH_POSTGRES      a PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/postgres; empty: skip).
#                       When it answers, the idle, get and set workloads also run against one, then two escrowd
#                       instances on one fresh database there (requests round-robin over the instances), and
#                       BENCHMARKS.md gets a section for each. Needs psql.
#   CARGO_TARGET_DIR    where cargo builds (default: target)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -p escrowd --locked
fi
bin=$target/release/escrowd
nanomdm=${NANOMDM:-$(command -v nanomdm || true)}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/escrowd-bench.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin_port=$(free_port)
ESCROWD_LOG=${ESCROWD_LOG:-warn} "$bin" serve --http --listen "127.0.0.1:$port" \
  --admin-listen "127.0.0.1:$admin_port" --data-dir "$work/data" \
  >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/serve.log" >&2; exit 1; fi
  sleep 0.1
done
api_key=$("$bin" apikey create --data-dir "$work/data" --scope operate --name bench --json | jq -r .key)

args=(bench --server "http://127.0.0.1:$port" --admin-server "http://127.0.0.1:$admin_port" --server-pid "$server_pid" --data-dir "$work/data"
  --workload "${BENCH_WORKLOADS:-idle,get,set,enroll,commands}"
  --devices "${BENCH_DEVICES:-200}" --concurrency "${BENCH_CONCURRENCY:-32}"
  --duration "${BENCH_DURATION:-10}" --presign "${BENCH_PRESIGN:-100000}"
  --markdown "$root/BENCHMARKS.md")
if [ -n "$nanomdm" ]; then args+=(--peer-nanomdm "$nanomdm"); fi
paced=${BENCH_PACED:-0.5}
if [ "$paced" != "0" ]; then args+=(--paced "$paced"); fi
mkdir -p "$target"
status=0
ESCROWD_API_KEY=$api_key "$bin" "${args[@]}" --json >"$target/bench-report.json" || status=$?
echo "wrote BENCHMARKS.md and $target/bench-report.json (bench exit status $status)" >&2
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=

# PostgreSQL: one instance, then two on the same database (the scale-out shape), each run on a fresh database.
pg=${BENCH_POSTGRES-postgres://postgres@127.0.0.1:5432/postgres}
if [ -n "$pg" ] && command -v psql >/dev/null && psql "$pg" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  db=escrowd_bench_$$
  db_url="${pg%/*}/$db"
  pg_pids=()
  stop_instances() {
    for p in "${pg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    pg_pids=()
  }
  drop_db() { psql "$pg" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; }
  trap 'stop_instances; drop_db; cleanup' EXIT
  for n in 1 2; do
    drop_db
    psql "$pg" -qAtc "CREATE DATABASE $db" >/dev/null
    rm -rf "$work/pgdata"
    servers=()
    pids=()
    for i in $(seq 1 "$n"); do
      p=$(free_port)
      a=$(free_port)
      # One data directory for all: the instances share the device CA and the vault key, as a deployment does.
      ESCROWD_LOG=${ESCROWD_LOG:-warn} "$bin" serve --http --listen "127.0.0.1:$p" --admin-listen "127.0.0.1:$a" \
        --data-dir "$work/pgdata" --database "$db_url" >"$work/serve-pg-$i.log" 2>&1 &
      pg_pids+=($!)
      for _ in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:$p/healthz" >/dev/null 2>&1; then break; fi
        if ! kill -0 "${pg_pids[-1]}" 2>/dev/null; then cat "$work/serve-pg-$i.log" >&2; exit 1; fi
        sleep 0.1
      done
      servers+=(--server "http://127.0.0.1:$p")
      pids+=(--server-pid "${pg_pids[-1]}")
      [ "$i" = 1 ] && first_admin=$a
    done
    if [ "$n" = 1 ]; then title="PostgreSQL, one instance"; else title="PostgreSQL, two instances on one database"; fi
    "$bin" bench "${servers[@]}" "${pids[@]}" --admin-server "http://127.0.0.1:$first_admin" \
      --data-dir "$work/pgdata" --database "$db_url" --workload idle,get,set --devices "${BENCH_DEVICES:-200}" \
      --concurrency "${BENCH_CONCURRENCY:-32}" --duration "${BENCH_DURATION:-10}" \
      --presign "${BENCH_PRESIGN:-100000}" --markdown "$root/BENCHMARKS.md" --markdown-section "$title" \
      --json >"$target/bench-report-pg-$n.json" || status=$?
    echo "added \"$title\" to BENCHMARKS.md (bench exit status $status)" >&2
    stop_instances
  done
  drop_db
else
  echo "no PostgreSQL at ${pg:-(skipped)}: BENCHMARKS.md has the SQLite figures only" >&2
fi
exit "$status"
