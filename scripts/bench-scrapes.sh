#!/usr/bin/env bash
# Scrape-storm load benchmark: what 16 scrapes a second cost the API. anyroute runs with 200 routes
# configured and about 800 label sets published, pinned to core 0; wrk sends requests across every
# route on core 1, in windows that alternate quiet and storm, where 8 scrapers (bench/scrapers, on
# core 1 too) scrape /metrics twice a second each, as Prometheus does (its Accept header, gzip).
# Each storm window is compared with its quiet neighbour, on the same warm server, so that a
# machine whose speed drifts (a shared one) favours neither. The same runs are made with the binary
# of BENCH_BASELINE_REF (default 3c32b1d, before the cached exposition; empty: none) for the
# side-by-side. Prints a table and
# rewrites the "Scrapes" section of docs/benchmarks.md.
#
# Env: BENCH_WINDOW (5s), BENCH_PAIRS (6 a round), BENCH_ROUNDS (3), BENCH_CONNECTIONS (64),
# BENCH_SCRAPERS (8), BENCH_SCRAPE_RATE (2, per scraper per second), BENCH_BASELINE_REF (3c32b1d),
# BENCH_DOC (docs/benchmarks.md; empty: print only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
WINDOW=${BENCH_WINDOW:-5s}
PAIRS=${BENCH_PAIRS:-6}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-3}
SCRAPERS=${BENCH_SCRAPERS:-8}
RATE=${BENCH_SCRAPE_RATE:-2}
# The baseline: the last commit before the cached exposition, when /metrics was promhttp gathering
# and encoding on every scrape, at most 4 at a time.
BASELINE=${BENCH_BASELINE_REF-3c32b1d}
DOC=${BENCH_DOC-docs/benchmarks.md}
OUT=.build/bench-scrapes
SERVER_CPU=0
LOAD_CPU=1
ROUTES=200
mkdir -p "$OUT"

scripts/deps.sh wrk
# Built as the image builds it (deployments/docker/Dockerfile): the deployed server, without the
# doctor, whose client-go would add a live heap that makes the garbage collector run more often.
go build -trimpath -tags nodoctor -o "$OUT/anyroute" ./cmd/anyroute
go build -o "$OUT/scrapers" ./bench/scrapers
BINARIES=("anyroute")
if [[ -n $BASELINE ]]; then
	# The baseline is built from the ref's tree, whatever the working tree holds.
	rm -rf "$OUT/baseline-src"
	mkdir -p "$OUT/baseline-src"
	git archive "$BASELINE" | tar -x -C "$OUT/baseline-src"
	(cd "$OUT/baseline-src" && go build -trimpath -o "$ROOT/$OUT/baseline" ./cmd/anyroute)
	BINARIES+=("baseline")
fi

# 200 routes; each answers 503 to half its requests, so GET and POST × 200 and 503 make 800 series.
CONFIG=$OUT/config.json
{
	echo '{"metrics": {"max_routes": '"$ROUTES"'}, "routes": ['
	for ((r = 0; r < ROUTES; r++)); do
		printf '  {"name": "r%03d", "match": "/r%03d/*", "error_rate": 0.5, "error_status": 503}%s\n' \
			"$r" "$r" "$([[ $r -lt $((ROUTES - 1)) ]] && echo ,)"
	done
	echo ']}'
} >"$CONFIG"
# wrk walks every route with GET and POST in turn.
LUA=$OUT/routes.lua
cat >"$LUA" <<LUA
local i = 0
request = function()
  i = i + 1
  local method = (math.floor(i / $ROUTES) % 2 == 0) and "GET" or "POST"
  return wrk.format(method, string.format("/r%03d/x", i % $ROUTES))
end
LUA

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_http() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-scrapes: $1 never answered" >&2
	return 1
}

RESULTS=$OUT/results.tsv
: >"$RESULTS"
API=127.0.0.1:18390
ADMIN=127.0.0.1:18391

# cpu_ticks PID: the CPU time the process has used, user and system, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# window BIN PID CASE PAIR: one measured window of the running server; appends round, binary,
# case, req/s, wrk p99 (µs), series, scrape summary, the server's CPU time per request (µs) over the
# window, and the pair to $RESULTS.
window() {
	local bin=$1 pid=$2 case=$3 pair=$4 slug="$OUT/$1-$ROUND-$4-$3"
	local scrapes="-" scrapers=""
	if [[ $case == storm ]]; then
		taskset -c "$LOAD_CPU" "$OUT/scrapers" -url "http://$ADMIN/metrics" -n "$SCRAPERS" -rate "$RATE" \
			-duration "$WINDOW" >"$slug.scrapes" &
		scrapers=$!
	fi
	local cpu_before cpu_after
	cpu_before=$(cpu_ticks "$pid")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WINDOW" --latency -s "$LUA" "http://$API" >"$slug.wrk"
	cpu_after=$(cpu_ticks "$pid")
	if [[ -n $scrapers ]]; then
		wait "$scrapers" || true
		scrapes=$(cat "$slug.scrapes")
	fi
	local rps p99 requests cpu_us
	rps=$(awk '/^Requests\/sec/ {print $2}' "$slug.wrk")
	requests=$(awk '/ requests in / {print $1}' "$slug.wrk")
	cpu_us=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
	p99=$(awk '$1 == "99%" {v = $2; n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000}' "$slug.wrk")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$bin" "$case" "$rps" "$p99" "$SERIES" "$scrapes" "$cpu_us" "$pair" >>"$RESULTS"
	echo "bench-scrapes: round $ROUND pair $pair: $bin $case: $rps req/s, p99 ${p99}µs, ${cpu_us} µs of CPU a request; $scrapes"
}

# serve BIN: start the server, warm it up (every series made and flushed), then measure PAIRS
# pairs of windows, quiet and storm, in alternating order: adjacent windows share the state of a
# machine whose speed drifts, so each pair's ratio is fair even when the rounds' speeds differ.
serve() {
	local bin=$1
	taskset -c "$SERVER_CPU" "$OUT/$bin" -config "$CONFIG" -http.addr "$API" -admin.addr "$ADMIN" >"$OUT/$bin-$ROUND.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_http "http://$ADMIN/readyz"
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d3s -s "$LUA" "http://$API" >/dev/null
	sleep 1.2 # a flush: every series of the warm-up is on the page
	SERIES=$(curl -fsS "http://$ADMIN/metrics" | grep -c '^app_requests_total{' || true)
	for ((pair = 1; pair <= PAIRS; pair++)); do
		if (((pair + ROUND) % 2)); then
			window "$bin" "$pid" quiet "$pair"
			window "$bin" "$pid" storm "$pair"
		else
			window "$bin" "$pid" storm "$pair"
			window "$bin" "$pid" quiet "$pair"
		fi
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for bin in "${BINARIES[@]}"; do
		serve "$bin"
	done
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# ratio BIN N: the storm window's column N over the quiet window's of the same pair (req/s: N=4),
# or the quiet window's over the storm window's (CPU per request: N=8, inverse).
ratio() {
	awk -F'\t' -v bin="$1" -v c="$2" -v inverse="${3:-}" '
		$2 == bin && $3 == "quiet" {q[$1 " " $9] = $c}
		$2 == bin && $3 == "storm" {s[$1 " " $9] = $c}
		END {for (r in s) if (r in q) printf "%.3f\n", inverse ? q[r] / s[r] : s[r] / q[r]}
	' "$RESULTS"
}
column() { awk -F'\t' -v bin="$1" -v c="$2" -v n="$3" '$2 == bin && $3 == c {print $n}' "$RESULTS"; }
# scrape BIN FIELD: the storm runs' FIELD=value, summed (counts) or their median (latencies).
scrape() { column "$1" storm 7 | tr ' ' '\n' | awk -F= -v f="$2" '$1 == f {print $2}'; }
sum() { awk '{s += $1} END {print s + 0}'; }

name_of() {
	if [[ $1 == anyroute ]]; then echo "anyroute (this tree)"; else echo "anyroute at $BASELINE (promhttp per scrape)"; fi
}
table=$(
	echo "| server | quiet req/s | storm req/s | storm/quiet (range) | CPU µs a request, quiet / storm | CPU quiet/storm (range) | scrapes ok / refused / failed | scrape p50 / p99 (ms) | request series | gzipped page |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for bin in "${BINARIES[@]}"; do
		printf '| %s | %.0f | %.0f | **%.3f** (%s–%s) | %s / %s | **%.3f** (%s–%s) | %s / %s / %s | %s / %s | %s | %s B |\n' "$(name_of "$bin")" \
			"$(column "$bin" quiet 4 | median)" "$(column "$bin" storm 4 | median)" \
			"$(ratio "$bin" 4 | median)" "$(ratio "$bin" 4 | sort -g | head -1)" "$(ratio "$bin" 4 | sort -g | tail -1)" \
			"$(column "$bin" quiet 8 | median)" "$(column "$bin" storm 8 | median)" \
			"$(ratio "$bin" 8 inverse | median)" "$(ratio "$bin" 8 inverse | sort -g | head -1)" "$(ratio "$bin" 8 inverse | sort -g | tail -1)" \
			"$(scrape "$bin" ok | sum)" "$(scrape "$bin" refused | sum)" "$(scrape "$bin" failed | sum)" \
			"$(scrape "$bin" p50_ms | median)" "$(scrape "$bin" p99_ms | median)" \
			"$(column "$bin" quiet 6 | median)" "$(scrape "$bin" gzip_bytes | median)"
	done
)
echo
echo "$table"

[[ -n $DOC ]] || exit 0
section=$(
	echo "<!-- scrapes:begin (written by scripts/bench-scrapes.sh) -->"
	echo "## Scrapes: the API under a scrape storm"
	echo
	echo "Command: \`make bench\` (\`scripts/bench-scrapes.sh\`), $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(go version | awk '{print $3}')."
	echo "anyroute runs with $ROUTES routes configured (each answering 503 to half its requests: about 800 request series, 11,200 bucket lines), pinned to core $SERVER_CPU. After a 3 s warm-up, \`wrk -t1 -c$CONNS -d$WINDOW\` walks every route with GET and POST on core $LOAD_CPU in windows that alternate quiet and storm: during a storm window $SCRAPERS scrapers (\`bench/scrapers\`, on core $LOAD_CPU too) scrape \`/metrics\` $RATE times a second each, with Prometheus 2.42's Accept header and gzip. $ROUNDS rounds of $PAIRS pairs of windows for each binary, one warm server a round, the pairs' order alternating; each ratio compares a storm window with its quiet neighbour, and the table shows medians over the pairs. The server's CPU time per request over each window (from \`/proc/PID/stat\`) is shown too: on a machine shared with other work, where the server may not get its core to itself, CPU quiet/storm is the throughput ratio a server with a whole core would see. Target (issue 17): storm/quiet ≥ 0.95 with no scrape refused."
	echo
	echo "$table"
	echo "<!-- scrapes:end -->"
)
scripts/section.sh "$DOC" scrapes <<<"$section"
echo "bench-scrapes: wrote $DOC"
