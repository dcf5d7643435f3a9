#!/usr/bin/env bash
# Scrape-storm load benchmark: what 16 scrapes a second cost the API. anyroute runs with 200 routes
# configured and about 800 label sets published, pinned to core 0; wrk sends requests across every
# route on core 1, once quiet and once while 8 scrapers (bench/scrapers, on core 1 too) scrape
# /metrics twice a second each, as Prometheus does (its Accept header, gzip). Rounds interleave the
# cases, alternating their order; each storm run is compared with the quiet run of its own round
# and binary. The same runs
# are made with the binary of BENCH_BASELINE_REF (default main; empty: none) for the side-by-side.
# Prints a table and rewrites the "Scrapes" section of docs/benchmarks.md.
#
# Env: BENCH_DURATION (15s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (5), BENCH_SCRAPERS (8),
# BENCH_SCRAPE_RATE (2, per scraper per second), BENCH_BASELINE_REF (main),
# BENCH_DOC (docs/benchmarks.md; empty: print only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
DURATION=${BENCH_DURATION:-15s}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-5}
SCRAPERS=${BENCH_SCRAPERS:-8}
RATE=${BENCH_SCRAPE_RATE:-2}
BASELINE=${BENCH_BASELINE_REF-main}
DOC=${BENCH_DOC-docs/benchmarks.md}
OUT=.build/bench-scrapes
SERVER_CPU=0
LOAD_CPU=1
ROUTES=200
mkdir -p "$OUT"

scripts/deps.sh wrk
go build -trimpath -o "$OUT/anyroute" ./cmd/anyroute
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

# run BINARY CASE: one measurement; appends round, binary, case, req/s, wrk p99 (µs), series,
# scrape summary to $RESULTS.
run() {
	local bin=$1 case=$2
	taskset -c "$SERVER_CPU" "$OUT/$bin" -config "$CONFIG" -http.addr "$API" -admin.addr "$ADMIN" >"$OUT/$bin-$case.log" 2>&1 &
	local pid=$!
	pids+=("$pid")
	wait_http "http://$ADMIN/readyz"
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d3s -s "$LUA" "http://$API" >/dev/null
	sleep 1.2 # a flush: every series of the warm-up is on the page
	local series
	series=$(curl -fsS "http://$ADMIN/metrics" | grep -c '^app_requests_total{' || true)
	local scrapes="-"
	if [[ $case == storm ]]; then
		taskset -c "$LOAD_CPU" "$OUT/scrapers" -url "http://$ADMIN/metrics" -n "$SCRAPERS" -rate "$RATE" \
			-duration "$DURATION" >"$OUT/$bin-$case.scrapes" &
		local scrapers=$!
	fi
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "http://$API" >"$OUT/$bin-$case.wrk"
	if [[ $case == storm ]]; then
		wait "$scrapers" || true
		scrapes=$(cat "$OUT/$bin-$case.scrapes")
	fi
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	local rps p99
	rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/$bin-$case.wrk")
	p99=$(awk '$1 == "99%" {v = $2; n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000}' "$OUT/$bin-$case.wrk")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$bin" "$case" "$rps" "$p99" "$series" "$scrapes" >>"$RESULTS"
	echo "bench-scrapes: round $ROUND: $bin $case: $rps req/s, p99 ${p99}µs, $series request series; $scrapes"
}

# Odd rounds run quiet first, even rounds the storm first, so that a machine slowing down or
# speeding up through a round does not favour either.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for bin in "${BINARIES[@]}"; do
		if ((ROUND % 2)); then
			run "$bin" quiet
			run "$bin" storm
		else
			run "$bin" storm
			run "$bin" quiet
		fi
	done
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# ratio BIN: storm req/s over quiet req/s of the same round.
ratio() {
	awk -F'\t' -v bin="$1" '
		$2 == bin && $3 == "quiet" {q[$1] = $4}
		$2 == bin && $3 == "storm" {printf "%.3f\n", $4 / q[$1]}
	' "$RESULTS"
}
column() { awk -F'\t' -v bin="$1" -v c="$2" -v n="$3" '$2 == bin && $3 == c {print $n}' "$RESULTS"; }
# scrape BIN FIELD: the storm runs' FIELD=value, summed (counts) or their median (latencies).
scrape() { column "$1" storm 7 | tr ' ' '\n' | awk -F= -v f="$2" '$1 == f {print $2}'; }
sum() { awk '{s += $1} END {print s + 0}'; }

name_of() {
	if [[ $1 == anyroute ]]; then echo "anyroute (this tree)"; else echo "anyroute at $BASELINE (before)"; fi
}
table=$(
	echo "| server | quiet req/s | storm req/s | storm/quiet (range) | scrapes ok / refused / failed | scrape p50 / p99 (ms) | request series | gzipped page |"
	echo "|---|---|---|---|---|---|---|---|"
	for bin in "${BINARIES[@]}"; do
		printf '| %s | %.0f | %.0f | **%.3f** (%s–%s) | %s / %s / %s | %s / %s | %s | %s B |\n' "$(name_of "$bin")" \
			"$(column "$bin" quiet 4 | median)" "$(column "$bin" storm 4 | median)" \
			"$(ratio "$bin" | median)" "$(ratio "$bin" | sort -g | head -1)" "$(ratio "$bin" | sort -g | tail -1)" \
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
	echo "anyroute runs with $ROUTES routes configured (each answering 503 to half its requests: about 800 request series, 11,200 bucket lines), pinned to core $SERVER_CPU; \`wrk -t1 -c$CONNS -d$DURATION\` walks every route with GET and POST on core $LOAD_CPU after a 3 s warm-up, once quiet and once while $SCRAPERS scrapers (\`bench/scrapers\`, on core $LOAD_CPU too) scrape \`/metrics\` $RATE times a second each, with Prometheus 2.42's Accept header and gzip. $ROUNDS rounds interleave the cases (quiet first in odd rounds, the storm first in even ones); each ratio is the storm's throughput over the quiet run's in the same round, for the same binary; the table shows medians. Target (issue 17): storm/quiet ≥ 0.95 with no scrape refused."
	echo
	echo "$table"
	echo "<!-- scrapes:end -->"
)
if grep -q '<!-- scrapes:begin' "$DOC"; then
	awk -v section="$section" '
		/<!-- scrapes:begin/ {print section; skip = 1; next}
		/<!-- scrapes:end -->/ {skip = 0; next}
		!skip {print}
	' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
else
	printf '\n%s\n' "$section" >>"$DOC"
fi
echo "bench-scrapes: wrote $DOC"
