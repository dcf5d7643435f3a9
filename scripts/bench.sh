#!/usr/bin/env bash
# Side-by-side load benchmark: anyroute against a bare net/http server (bench/bare), each pinned to
# core 0 while wrk runs on core 1, in one run, so that the ratios compare like with like. Prints a
# table and rewrites the "Load" section of docs/benchmarks.md.
#
# Env: BENCH_DURATION (default 15s), BENCH_CONNECTIONS (default 64), BENCH_ROUNDS (default 3),
# BENCH_DOC (default docs/benchmarks.md; empty: print only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# As in the Makefile: build with the patched release go.mod's toolchain line names.
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
DURATION=${BENCH_DURATION:-15s}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
DOC=${BENCH_DOC-docs/benchmarks.md}
OUT=.build/bench
SERVER_CPU=0
LOAD_CPU=1
mkdir -p "$OUT"

scripts/deps.sh wrk
scripts/tools.sh jaeger >/dev/null
go build -o "$OUT/bare" ./bench/bare
go build -trimpath -o "$OUT/anyroute" ./cmd/anyroute

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_http() { # URL: wait until it answers
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: $1 never answered" >&2
	return 1
}

# Jaeger receives the spans of the tracing cases, on the load generator's core.
taskset -c "$LOAD_CPU" .tools/bin/jaeger --config "file:scripts/jaeger-config.yaml" >"$OUT/jaeger.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:16686/api/services

RESULTS=$OUT/results.tsv
: >"$RESULTS"

# run NAME URL COMMAND...: start the server on its core, warm it up, measure, and append a line to
# $RESULTS: round, name, req/s, p50 and p99 (µs), RSS idle and after the load (MiB), wrk errors.
run() {
	local name=$1 url=$2 slug
	slug=$(tr -c 'a-z0-9.\n' '-' <<<"$name")
	shift 2
	taskset -c "$SERVER_CPU" "$@" >"$OUT/$slug.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_http "$url"
	local idle_rss load_rss
	idle_rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d3s "$url" >/dev/null
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url" >"$OUT/$slug.wrk"
	load_rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	local rps p50 p99 errors
	rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$slug.wrk")
	p50=$(awk '$1 == "50%" {print $2}' "$OUT/$slug.wrk")
	p99=$(awk '$1 == "99%" {print $2}' "$OUT/$slug.wrk")
	errors=$(awk '/Socket errors|Non-2xx/ {print}' "$OUT/$slug.wrk" | tr '\n' ' ')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$name" "$rps" "$(to_us "$p50")" "$(to_us "$p99")" \
		"$idle_rss" "$load_rss" "${errors:-none}" >>"$RESULTS"
	echo "bench: round $ROUND: $name: $rps req/s, p50 $p50, p99 $p99, RSS idle $idle_rss MiB, after load $load_rss MiB ${errors}"
}

# to_us turns wrk's latency (e.g. 1.23ms, 850.00us, 1.01s) into microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n
	}'
}

config() { # BACKEND SAMPLER PARAM: a config file for one case
	local f="$OUT/config-$1-$2-$3.json"
	cat >"$f" <<JSON
{"tracing": {"backend": "$1", "sampler": {"type": "$2", "param": $3}, "jaeger": {"agent_addr": "127.0.0.1:6831"}}}
JSON
	echo "$f"
}

BARE="bare net/http"
CASES=("$BARE" "anyroute, tracing none" "anyroute, jaeger probabilistic 0.01" "anyroute, jaeger const 1")
run_round() {
	run "${CASES[0]}" http://127.0.0.1:18190/bench/x "$OUT/bare" -addr 127.0.0.1:18190
	run "${CASES[1]}" http://127.0.0.1:18191/bench/x "$OUT/anyroute" \
		-config "$(config none const 1)" -http.addr 127.0.0.1:18191 -admin.addr 127.0.0.1:18291
	run "${CASES[2]}" http://127.0.0.1:18192/bench/x "$OUT/anyroute" \
		-config "$(config jaeger probabilistic 0.01)" -http.addr 127.0.0.1:18192 -admin.addr 127.0.0.1:18292
	run "${CASES[3]}" http://127.0.0.1:18193/bench/x "$OUT/anyroute" \
		-config "$(config jaeger const 1)" -http.addr 127.0.0.1:18193 -admin.addr 127.0.0.1:18293
}

# Rounds interleave the cases, so that a slow spell of the machine hits every case alike; each
# ratio compares a case with the bare server of its own round, and the table shows medians.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	run_round
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# column NAME N: column N of NAME's lines. ratio NAME N: NAME's column N over the bare server's
# in the same round.
column() { awk -F'\t' -v name="$1" -v c="$2" '$2 == name {print $c}' "$RESULTS"; }
ratio() {
	awk -F'\t' -v name="$1" -v c="$2" -v bare="$BARE" '
		$2 == bare {b[$1] = $c}
		$2 == name {printf "%.3f\n", $c / b[$1]}
	' "$RESULTS"
}

table=$(
	echo "| server | req/s | p50 (µs) | p99 (µs) | ratio to bare (range) | p99 vs bare | RSS idle (MiB) | RSS after load (MiB) | wrk errors |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for name in "${CASES[@]}"; do
		printf '| %s | %.0f | %.0f | %.0f | **%.3f** (%s–%s) | %.2f× | %s | %s | %s |\n' "$name" \
			"$(column "$name" 3 | median)" "$(column "$name" 4 | median)" "$(column "$name" 5 | median)" \
			"$(ratio "$name" 3 | median)" "$(ratio "$name" 3 | sort -g | head -1)" "$(ratio "$name" 3 | sort -g | tail -1)" \
			"$(ratio "$name" 5 | median)" "$(column "$name" 6 | sort -g | tail -1)" "$(column "$name" 7 | sort -g | tail -1)" \
			"$(column "$name" 8 | sort -u | tr '\n' ' ')"
	done
)
echo
echo "$table"

[[ -n $DOC ]] || exit 0
section=$(
	echo "<!-- load:begin (written by scripts/bench.sh) -->"
	echo "## Load: anyroute against a bare net/http server"
	echo
	echo "Command: \`make bench\` (\`scripts/bench.sh\`), $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(go version | awk '{print $3}'), $(wrk --version 2>&1 | awk 'NR == 1 {print $1, $2}')."
	echo "Each server runs alone, pinned to core $SERVER_CPU; \`wrk -t1 -c$CONNS -d$DURATION --latency\` runs on core $LOAD_CPU after a 3 s warm-up, in $ROUNDS rounds that interleave the cases; the table shows medians, each ratio taken against the bare server of the same round; Jaeger (the tracing cases' agent) shares the load core. The bare server answers the same JSON echo with encoding/json and no middleware, with anyroute's default server timeouts; anyroute writes its echo into a pooled buffer, which is how it can match or pass the bare server with metrics on. Targets: tracing none ≥ 0.95 of bare with p99 ≤ 1.2×, jaeger probabilistic 0.01 ≥ 0.90, jaeger const 1 ≥ 0.50, idle RSS under 20 MiB."
	echo
	echo "$table"
	echo "<!-- load:end -->"
)
if grep -q '<!-- load:begin' "$DOC"; then
	awk -v section="$section" '
		/<!-- load:begin/ {print section; skip = 1; next}
		/<!-- load:end -->/ {skip = 0; next}
		!skip {print}
	' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
	printf '\n%s\n' "$section" >>"$DOC"
fi
echo "bench: wrote $DOC"
