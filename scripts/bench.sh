#!/usr/bin/env bash
# Server-side load benchmark, side by side in one run: anyroute (tracing none, jaeger probabilistic
# 0.01, jaeger const 1, otlp const 1), the peers users would pick instead (podinfo, go-httpbin,
# fortio, built from the Go module proxy at pinned versions by scripts/tools.sh), and anyroute with
# one upstream call per request, each against a bare net/http server (bench/bare) doing the same
# work the plain way. Every server runs alone, pinned to core 0, while wrk runs on core 1; rounds
# interleave every case, so that a slow spell of the machine hits every case alike, and each ratio
# is taken within its round. Then the memory figures: RSS idle and with BENCH_IDLE_CONNECTIONS
# idle keep-alive connections open (bench/conns). Prints the tables and rewrites the "Load"
# section of docs/benchmarks.md.
#
# Env: BENCH_DURATION (15s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (64), BENCH_ROUNDS (5),
# BENCH_IDLE_CONNECTIONS (5000; 0: no memory figures), BENCH_CASES (case ids to run, default
# all: bare none jaeger-prob jaeger-const otlp-const podinfo go-httpbin fortio bare-call
# anyroute-call), BENCH_PORT_BASE (18100: the run uses the 80 ports from there, loopback only),
# BENCH_DOC (docs/benchmarks.md, or none when BENCH_CASES is set; empty: print only), BENCH_README
# (README.md: its performance paragraph is rewritten with the doc), BENCH_MIN_BUSY (0.9: a ratio
# whose server or baseline used less of its core than this is marked inconclusive).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# As in the Makefile: build with the patched release go.mod's toolchain line names.
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
CONNS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-5}
IDLE_CONNS=${BENCH_IDLE_CONNECTIONS:-5000}
PORT_BASE=${BENCH_PORT_BASE:-18100}
DOC=${BENCH_DOC-docs/benchmarks.md}
README=${BENCH_README-README.md}
# A ratio is conclusive only when the servers had their core to themselves: each used at least
# this share of it (the rest of the time it waited for the load core, or the machine ran others).
MIN_BUSY=${BENCH_MIN_BUSY:-0.9}
# A run of some cases only prints, unless BENCH_DOC is set: the doc's tables are of whole runs.
[[ -z ${BENCH_CASES:-} || -n ${BENCH_DOC+set} ]] || DOC=
OUT=.build/bench
SERVER_CPU=0
LOAD_CPU=1
TOOLS=${TOOLS_DIR:-.tools}/bin # where scripts/tools.sh puts them
TICK=$(getconf CLK_TCK)
mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/*.wrk

# The cases, in the order of a round. For each: its name in the tables, the request wrk sends
# (always a GET with only a Host header), its baseline (the ratio's denominator, measured in the
# same round) and its target, as a ratio to that baseline.
ALL_CASES=(bare none jaeger-prob jaeger-const otlp-const podinfo go-httpbin fortio bare-call anyroute-call)
read -r -a CASES <<<"${BENCH_CASES:-${ALL_CASES[*]}}"
declare -A NAME=(
	[bare]="bare net/http"
	[none]="anyroute, tracing none"
	[jaeger-prob]="anyroute, jaeger probabilistic 0.01"
	[jaeger-const]="anyroute, jaeger const 1"
	[otlp-const]="anyroute, otlp const 1"
	[podinfo]="podinfo 6.9.2"
	[go-httpbin]="go-httpbin v2.26.0"
	[fortio]="fortio 1.63.0"
	[bare-call]="bare net/http, one upstream call"
	[anyroute-call]="anyroute, one upstream call"
)
declare -A REQUEST=(
	[bare]=/bench/x [none]=/bench/x [jaeger-prob]=/bench/x [jaeger-const]=/bench/x [otlp-const]=/bench/x
	[podinfo]=/headers [go-httpbin]=/anything/bench/x [fortio]=/debug
	[bare-call]=/bench/x [anyroute-call]=/bench/x
)
declare -A BASE=(
	[none]=bare [jaeger-prob]=bare [jaeger-const]=bare [otlp-const]=bare
	[podinfo]=bare [go-httpbin]=bare [fortio]=bare [anyroute-call]=bare-call
)
declare -A TARGET=([none]=0.97 [jaeger-prob]=0.95 [jaeger-const]=0.80 [otlp-const]=0.80 [anyroute-call]=0.90)
# Tracing cases: each reports under its own service name, so that Jaeger shows which arrived.
declare -A SERVICE=([jaeger-prob]=bench-jaeger-prob [jaeger-const]=bench-jaeger-const [otlp-const]=bench-otlp-const)
declare -A TOOL=([podinfo]=podinfo [go-httpbin]=go-httpbin [fortio]=fortio)

has_case() { [[ " ${CASES[*]} " == *" $1 "* ]]; }
for c in "${CASES[@]}"; do
	[[ -n ${NAME[$c]:-} ]] || {
		echo "bench: unknown case '$c' (known: ${ALL_CASES[*]})" >&2
		exit 2
	}
	if [[ -n ${BASE[$c]:-} ]] && ! has_case "${BASE[$c]}"; then
		echo "bench: case $c needs its baseline ${BASE[$c]} in BENCH_CASES" >&2
		exit 2
	fi
done

# Ports, all on 127.0.0.1: case i's API on BASE+i and admin on BASE+20+i, the upstream of the
# call cases on BASE+40/41, Jaeger's listeners from BASE+50.
port_of() {
	local i
	for i in "${!ALL_CASES[@]}"; do
		[[ ${ALL_CASES[$i]} == "$1" ]] && echo $((PORT_BASE + i)) && return
	done
}
admin_of() { echo $(($(port_of "$1") + 20)); }
UP_PORT=$((PORT_BASE + 40))
UP_ADMIN=$((PORT_BASE + 41))
J=$((PORT_BASE + 50))
JAEGER_QUERY=$J JAEGER_HEALTH=$((J + 4)) JAEGER_OTLP_HTTP=$((J + 7)) JAEGER_AGENT=$((J + 11))
taken=$(ss -Htlnu | awk -v lo="$PORT_BASE" -v hi=$((PORT_BASE + 80)) '
	{n = split($5, a, ":"); p = a[n] + 0; if (p >= lo && p < hi) print p}' | sort -un | tr '\n' ' ')
if [[ -n $taken ]]; then
	echo "bench: ports $taken are taken; set BENCH_PORT_BASE to a free block of 80 ports" >&2
	exit 1
fi

scripts/deps.sh wrk
go build -o "$OUT/bare" ./bench/bare
go build -o "$OUT/conns" ./bench/conns
# Built as the image builds it (deployments/docker/Dockerfile): the deployed server, without the
# doctor, whose client-go would add a live heap that makes the garbage collector run more often.
go build -trimpath -tags nodoctor -o "$OUT/anyroute" ./cmd/anyroute

# The peers and Jaeger come from scripts/tools.sh; a peer that cannot be built is left out of the
# run, and the doc says why.
declare -A MISSING=()
for c in "${CASES[@]}"; do
	[[ -n ${TOOL[$c]:-} ]] || continue
	if ! scripts/tools.sh "${TOOL[$c]}" >"$OUT/tools-${TOOL[$c]}.log" 2>&1; then
		MISSING[$c]=$(grep -v '^go: downloading' "$OUT/tools-${TOOL[$c]}.log" | tail -n 3 | tr '\n' ' ')
		echo "bench: ${NAME[$c]} could not be built, left out: ${MISSING[$c]}" >&2
	fi
done
RUN=()
for c in "${CASES[@]}"; do [[ -n ${MISSING[$c]:-} ]] || RUN+=("$c"); done
TRACING=false
for c in "${RUN[@]}"; do [[ -n ${SERVICE[$c]:-} ]] && TRACING=true; done
if $TRACING; then scripts/tools.sh jaeger >/dev/null; fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_http() { # URL: wait until it answers 2xx
	for _ in $(seq 150); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench: $1 never answered" >&2
	return 1
}
rss_of() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
cpu_of() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; } # utime + stime, in ticks
stop() {                                                                # PID: SIGTERM and wait
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Jaeger receives the spans of the tracing cases, on the load generator's core, with every
# listener of the project's config moved into this run's port block (as test/kit does).
if $TRACING; then
	jaeger_args=(--config file:scripts/jaeger-config.yaml --set=service.telemetry.metrics.level=none)
	i=0
	for key in extensions.jaeger_query.http extensions.jaeger_query.grpc extensions.remote_sampling.http \
		extensions.remote_sampling.grpc extensions.healthcheckv2.http extensions.healthcheckv2.grpc \
		receivers.otlp.protocols.grpc receivers.otlp.protocols.http receivers.jaeger.protocols.grpc \
		receivers.jaeger.protocols.thrift_http receivers.jaeger.protocols.thrift_binary \
		receivers.jaeger.protocols.thrift_compact receivers.zipkin; do
		jaeger_args+=("--set=$key.endpoint=127.0.0.1:$((J + i))")
		i=$((i + 1))
	done
	JAEGER_LISTEN_HOST=127.0.0.1 taskset -c "$LOAD_CPU" "$TOOLS/jaeger" "${jaeger_args[@]}" >"$OUT/jaeger.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$JAEGER_HEALTH/status"
	wait_http "http://127.0.0.1:$JAEGER_QUERY/api/services"
fi

config() { # CASE: anyroute's config file for a case
	local c=$1 f="$OUT/config-$1.json"
	case $c in
	none) echo '{}' ;;
	jaeger-prob | jaeger-const)
		local type=const param=1
		[[ $c == jaeger-prob ]] && type=probabilistic param=0.01
		printf '{"tracing": {"backend": "jaeger", "service_name": "%s", "sampler": {"type": "%s", "param": %s}, "jaeger": {"agent_addr": "127.0.0.1:%s"}}}\n' \
			"${SERVICE[$c]}" "$type" "$param" "$JAEGER_AGENT"
		;;
	otlp-const)
		printf '{"tracing": {"backend": "otlp", "service_name": "%s", "sampler": {"type": "const", "param": 1}, "otlp": {"endpoint": "127.0.0.1:%s", "insecure": true}}}\n' \
			"${SERVICE[$c]}" "$JAEGER_OTLP_HTTP"
		;;
	anyroute-call)
		printf '{"routes": [{"name": "hop", "match": "/*", "calls": [{"name": "up", "url": "http://127.0.0.1:%s/up/{path}", "timeout": "1s"}]}]}\n' "$UP_PORT"
		;;
	esac >"$f"
	echo "$f"
}

# start CASE: start the case's server, pinned to the server core, in the background; sets PID.
start() {
	local c=$1 port admin cmd
	port=$(port_of "$c")
	admin=$(admin_of "$c")
	case $c in
	bare) cmd=("$OUT/bare" -addr "127.0.0.1:$port") ;;
	bare-call) cmd=("$OUT/bare" -addr "127.0.0.1:$port" -upstream "http://127.0.0.1:$UP_PORT/up/") ;;
	none | jaeger-* | otlp-* | anyroute-call)
		cmd=("$OUT/anyroute" -config "$(config "$c")" -http.addr "127.0.0.1:$port" -admin.addr "127.0.0.1:$admin")
		;;
	# Peers: their per-request logs are off (anyroute's access log is off by default too).
	podinfo)
		mkdir -p "$OUT/podinfo-data"
		cmd=("$TOOLS/podinfo" --host 127.0.0.1 --port "$port" --level warn
			--data-path "$OUT/podinfo-data" --ui-path "$OUT/podinfo-data")
		;;
	go-httpbin) cmd=("$TOOLS/go-httpbin" -host 127.0.0.1 -port "$port" -log-level WARN) ;;
	fortio)
		cmd=("$TOOLS/fortio" server -http-port "127.0.0.1:$port" -loglevel warning -ui-path ""
			-tcp-port disabled -udp-port disabled -grpc-port disabled -redirect-port disabled)
		;;
	esac
	taskset -c "$SERVER_CPU" "${cmd[@]}" >>"$OUT/$c.log" 2>&1 &
	PID=$!
	pids+=("$PID")
}

# to_us turns wrk's latency (e.g. 1.23ms, 850.00us, 1.01s) into microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n
	}'
}

RESULTS=$OUT/results.tsv
: >"$RESULTS"

# run CASE: warm the case's server up, measure, and append to $RESULTS: round, case, req/s, p50
# and p99 (µs), RSS idle and after the load (MiB), server CPU per request (µs), share of its core
# the server used, wrk errors, and for the call cases the upstream's TCP connections accepted and
# the calls it answered, and the connections open to it 1 s into the measured run.
run() {
	local c=$1 url up_pid="" conns="-" calls="-" est="-"
	url="http://127.0.0.1:$(port_of "$c")${REQUEST[$c]}"
	if [[ $c == *-call ]]; then
		# The upstream: a plain anyroute on the load core, fresh for each run, so that its count of
		# accepted connections is this run's.
		taskset -c "$LOAD_CPU" "$OUT/anyroute" -http.addr "127.0.0.1:$UP_PORT" -admin.addr "127.0.0.1:$UP_ADMIN" \
			>"$OUT/upstream-$c-$ROUND.log" 2>&1 &
		up_pid=$!
		pids+=("$up_pid")
		wait_http "http://127.0.0.1:$UP_ADMIN/readyz"
	fi
	start "$c"
	local pid=$PID
	wait_http "$url"
	local idle_rss load_rss cpu0 cpu1 t0 t1
	idle_rss=$(rss_of "$pid")
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
	cpu0=$(cpu_of "$pid") t0=$(date +%s.%N)
	if [[ -n $up_pid ]]; then # the connections open to the upstream 1 s into the measured run
		(sleep 1 && ss -Htn state established "sport = :$UP_PORT" | wc -l >"$OUT/upstream-$c-$ROUND.est") &
	fi
	taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"$DURATION" --latency "$url" >"$OUT/$c-$ROUND.wrk"
	cpu1=$(cpu_of "$pid") t1=$(date +%s.%N)
	load_rss=$(rss_of "$pid")
	stop "$pid"
	if [[ -n $up_pid ]]; then
		sleep 1.2 # a flush: every call is on the upstream's page
		calls=$(curl -fsS "http://127.0.0.1:$UP_ADMIN/metrics" |
			awk '/^app_requests_total\{/ {s += $NF} END {printf "%d", s}')
		stop "$up_pid"
		conns=$(sed -n 's/.*msg="API stopped".*connections_accepted=\([0-9]*\).*/\1/p' "$OUT/upstream-$c-$ROUND.log")
		est=$(cat "$OUT/upstream-$c-$ROUND.est" 2>/dev/null || echo "-")
	fi
	local w="$OUT/$c-$ROUND.wrk" rps reqs p50 p99 errors cpu_us busy
	rps=$(awk '/^Requests\/sec/ {print $2}' "$w")
	reqs=$(awk '/requests in/ {print $1}' "$w")
	p50=$(awk '$1 == "50%" {print $2}' "$w")
	p99=$(awk '$1 == "99%" {print $2}' "$w")
	errors=$(awk '/Socket errors|Non-2xx/ {print}' "$w" | tr '\n' ' ')
	cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" -v t="$TICK" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / n}')
	busy=$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t / (t1 - t0)}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$c" "$rps" "$(to_us "$p50")" "$(to_us "$p99")" \
		"$idle_rss" "$load_rss" "$cpu_us" "$busy" "${errors:-none}" "$conns" "$calls" "$est" >>"$RESULTS"
	echo "bench: round $ROUND: ${NAME[$c]}: $rps req/s, p50 $p50, p99 $p99, ${cpu_us} µs CPU/request (core ${busy} busy)," \
		"RSS idle $idle_rss MiB, after load $load_rss MiB${errors:+, $errors}$([[ -n $up_pid ]] && echo ", upstream: $conns connections accepted for $calls calls, $est open 1 s into the run")"
}

# Rounds interleave the cases, forward in odd rounds and backward in even ones, so that neither
# end of a round is favoured.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	echo "bench: round $ROUND of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	order=("${RUN[@]}")
	if ((ROUND % 2 == 0)); then
		order=()
		for ((i = ${#RUN[@]} - 1; i >= 0; i--)); do order+=("${RUN[$i]}"); done
	fi
	for c in "${order[@]}"; do run "$c"; done
done

# The traced cases' spans reached Jaeger: the services it knows.
declare -A TRACED=()
if $TRACING; then
	sleep 2 # the reporters' last batches
	services=$(curl -fsS "http://127.0.0.1:$JAEGER_QUERY/api/services" || true)
	for c in "${RUN[@]}"; do
		[[ -n ${SERVICE[$c]:-} ]] || continue
		if grep -q "\"${SERVICE[$c]}\"" <<<"$services"; then TRACED[$c]="spans in Jaeger"; else TRACED[$c]="NO spans in Jaeger"; fi
	done
fi

# Memory: RSS idle (after one request), then with IDLE_CONNS idle keep-alive connections open.
MEMORY=$OUT/memory.tsv
: >"$MEMORY"
memory() { # CASE
	local c=$1 url port
	port=$(port_of "$c")
	url="http://127.0.0.1:$port${REQUEST[$c]}"
	start "$c"
	local pid=$PID
	wait_http "$url"
	sleep 1
	local idle held open closed
	idle=$(rss_of "$pid")
	# Each case's connections come from a loopback address of their own (see bench/conns).
	taskset -c "$LOAD_CPU" "$OUT/conns" -addr "127.0.0.1:$port" -source "127.0.1.$((port - PORT_BASE + 1))" \
		-path "${REQUEST[$c]}" -n "$IDLE_CONNS" -hold 10m >"$OUT/conns-$c.out" 2>"$OUT/conns-$c.err" &
	local cpid=$!
	pids+=("$cpid")
	for _ in $(seq 1800); do
		grep -q '^open' "$OUT/conns-$c.out" && break
		sleep 0.1
	done
	sleep 1
	held=$(rss_of "$pid")
	open=$(awk '/^open/ {print $2}' "$OUT/conns-$c.out")
	local est
	est=$(ss -Htn state established "sport = :$port" | wc -l)
	stop "$cpid"
	closed=$(awk -F': ' '/^closed/ {print $2}' "$OUT/conns-$c.out")
	stop "$pid"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$idle" "$held" "${open:-0}" "$est" "${closed:-?}" >>"$MEMORY"
	echo "bench: memory: ${NAME[$c]}: RSS idle $idle MiB, with ${open:-0} idle connections $held MiB ($est established; ${closed:-?} closed by the server while held)$([[ -s $OUT/conns-$c.err ]] && echo "; $(cat "$OUT/conns-$c.err")")"
}
if ((IDLE_CONNS > 0)); then
	# Both ends hold one descriptor a connection: raise the soft limit to the hard one.
	ulimit -S -n "$(ulimit -H -n)"
	if (($(ulimit -n) < IDLE_CONNS + 1000)); then
		echo "bench: the file limit ($(ulimit -n)) is too low for $IDLE_CONNS connections; no memory figures" >&2
	else
		for c in "${RUN[@]}"; do
			case $c in bare | none | podinfo | go-httpbin | fortio) memory "$c" ;; esac
		done
	fi
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
lowest() { sort -g | head -n 1; }
highest() { sort -g | tail -n 1; }
# column CASE N: column N of CASE's lines. ratio CASE N [OTHER]: CASE's column N over OTHER's
# (default: the case's baseline) in the same round.
column() { awk -F'\t' -v c="$1" -v n="$2" '$2 == c {print $n}' "$RESULTS"; }
ratio() {
	awk -F'\t' -v c="$1" -v n="$2" -v base="${3:-${BASE[$1]}}" '
		$2 == base {b[$1] = $n}
		$2 == c {a[$1] = $n}
		END {for (r in a) if (r in b && b[r] > 0) printf "%.3f\n", a[r] / b[r]}
	' "$RESULTS"
}
# summary CASE N [OTHER]: "**median** (lowest–highest)" of the per-round ratios.
summary() {
	local rs
	rs=$(ratio "$@")
	printf '**%.3f** (%s–%s)' "$(median <<<"$rs")" "$(lowest <<<"$rs")" "$(highest <<<"$rs")"
}
busy() { column "$1" 9 | median; }
# saturated CASE...: every case's server used at least MIN_BUSY of its core (median over rounds).
saturated() {
	local c
	for c in "$@"; do
		awk -v b="$(busy "$c")" -v m="$MIN_BUSY" 'BEGIN {exit !(b >= m)}' || return 1
	done
}
verdict() { # CASE: the target beside the median ratio
	local c=$1 t=${TARGET[$1]:-} m v
	[[ -n $t ]] || return 0
	m=$(ratio "$c" 3 | median)
	if awk -v m="$m" -v t="$t" 'BEGIN {exit !(m >= t)}'; then v="≥ $t: met"; else v="≥ $t: **missed**"; fi
	saturated "$c" "${BASE[$c]}" || v="$v, inconclusive (server core busy $(fmt "$(busy "$c")" %.2f), baseline $(fmt "$(busy "${BASE[$c]}")" %.2f), under $MIN_BUSY)"
	echo "$v"
}
errors_of() { column "$1" 10 | sort -u | tr '\n' ' ' | sed 's/ $//'; }
# fmt VALUE [FORMAT]: a number as FORMAT (default %.0f); "-" stays.
fmt() { awk -v v="$1" -v f="${2:-%.0f}" 'BEGIN {if (v == "-" || v == "") print "-"; else printf f, v}'; }

ran() { [[ " ${RUN[*]} " == *" $1 "* ]]; }
row() { # CASE: the columns every load table shares
	local c=$1
	# shellcheck disable=SC2016 # the backticks are Markdown
	printf '| %s | `GET %s` | %s | %s | %s | %s | %s | %s | %s / %s | %s |' "${NAME[$c]}" "${REQUEST[$c]}" \
		"$(fmt "$(column "$c" 3 | median)")" "$(fmt "$(column "$c" 4 | median)")" "$(fmt "$(column "$c" 5 | median)")" \
		"$(fmt "$(column "$c" 8 | median)" %.1f)" "$(fmt "$(column "$c" 9 | median)" %.2f)" \
		"$(if [[ -n ${BASE[$c]:-} ]]; then summary "$c" 3; else echo "1 (baseline)"; fi)" \
		"$(column "$c" 6 | highest)" "$(column "$c" 7 | highest)" "$(errors_of "$c")"
}
HEAD='| server | request | req/s | p50 (µs) | p99 (µs) | server CPU per request (µs) | server core busy | ratio to baseline (range over rounds) | RSS idle / after load (MiB) | wrk errors |'
RULE='|---|---|---|---|---|---|---|---|---|---|'

tracing_table=$(
	echo "${HEAD% |} | p99 vs bare | CPU per request vs bare | target |"
	echo "$RULE---|---|---|"
	for c in bare none jaeger-prob jaeger-const otlp-const; do
		ran "$c" || continue
		t=$(verdict "$c")
		[[ -n ${TRACED[$c]:-} ]] && t="$t; ${TRACED[$c]}"
		if [[ $c == bare ]]; then
			echo "$(row "$c") 1 | 1 | |"
		else
			echo "$(row "$c") $(fmt "$(ratio "$c" 5 | median)" %.2f)× | $(fmt "$(ratio "$c" 8 | median)" %.2f)× | $t |"
		fi
	done
)
# What each peer's request does, and whether it is comparable work (a JSON echo with per-request
# metrics).
declare -A DOES=(
	[podinfo]="the request's headers as indented JSON (\`{}\`-like for wrk's one Host header), through gorilla/mux with its Prometheus middleware (a histogram and a counter per request, client_golang vectors), otelmux (no-op tracer) and its logging middleware (debug level, off)"
	[go-httpbin]="a JSON echo (indented) of method, URL, headers, query args, origin, body, form; no metrics; its per-request log (an Info line) is off at WARN, though the line is still formatted"
	[fortio]="a text dump of method, URL, protocol, headers and body, with the host name and uptime; no JSON, no per-request metrics; its per-request log is off at warning"
)
declare -A COMPARABLE=([podinfo]="yes: JSON, per-request metrics (not an echo of method and path)" [go-httpbin]="partly: JSON echo, no metrics" [fortio]="no: text, no metrics")
peers_table=$(
	echo "| server | request | what it answers | comparable work | req/s | p99 (µs) | server CPU per request (µs) | ratio to bare (range) | anyroute, tracing none ÷ peer (range) | wrk errors |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for c in podinfo go-httpbin fortio; do
		has_case "$c" || continue
		if [[ -n ${MISSING[$c]:-} ]]; then
			echo "| ${NAME[$c]} | \`GET ${REQUEST[$c]}\` | ${DOES[$c]} | ${COMPARABLE[$c]} | could not be built: \`${MISSING[$c]}\` | | | | | |"
			continue
		fi
		# shellcheck disable=SC2016 # the backticks are Markdown
		printf '| %s | `GET %s` | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${NAME[$c]}" "${REQUEST[$c]}" "${DOES[$c]}" "${COMPARABLE[$c]}" \
			"$(fmt "$(column "$c" 3 | median)")" "$(fmt "$(column "$c" 5 | median)")" "$(fmt "$(column "$c" 8 | median)" %.1f)" \
			"$(summary "$c" 3)" "$(if ran none; then summary none 3 "$c"; else echo -; fi)" "$(errors_of "$c")"
	done
)
call_table=$(
	echo "${HEAD% |} | CPU per request vs bare | target | upstream: TCP connections accepted per run (median, highest) | calls per run (median) | connections open 1 s into the run (median) |"
	echo "$RULE---|---|---|---|---|"
	for c in bare-call anyroute-call; do
		ran "$c" || continue
		if [[ $c == bare-call ]]; then
			t="" cr=1
		else
			t=$(verdict "$c") cr="$(fmt "$(ratio "$c" 8 | median)" %.2f)×"
		fi
		echo "$(row "$c") $cr | $t | $(fmt "$(column "$c" 11 | median)"), $(column "$c" 11 | highest) | $(fmt "$(column "$c" 12 | median)") | $(fmt "$(column "$c" 13 | median)") |"
	done
)
memory_table=$(
	echo "| server | RSS idle (MiB) | RSS with $IDLE_CONNS idle keep-alive connections (MiB) | per connection established (KiB) | connections open / established at the server / closed by it while held |"
	echo "|---|---|---|---|---|"
	while IFS=$'\t' read -r c idle held open est closed; do
		printf '| %s | %s | %s | %s | %s / %s / %s |\n' "${NAME[$c]}" "$idle" "$held" \
			"$(awk -v a="$idle" -v b="$held" -v n="$est" 'BEGIN {if (n > 0) printf "%.1f", (b - a) * 1024 / n; else print "-"}')" \
			"$open" "$est" "$closed"
	done <"$MEMORY"
)

echo
echo "$tracing_table"
echo
echo "$peers_table"
echo
echo "$call_table"
echo
echo "$memory_table"
echo
echo "bench: load average $LOAD_BEFORE before the run, $LOAD_AFTER after"

[[ -n $DOC ]] || exit 0
# The busy range over the cases that ran, when any was under MIN_BUSY.
NOISY=$(for c in "${RUN[@]}"; do busy "$c"; done | sort -g | awk -v m="$MIN_BUSY" '
	NR == 1 {lo = $1} {hi = $1; if ($1 < m) n++} END {if (n) printf "%.2f–%.2f", lo, hi}')
section=$(
	echo "<!-- load:begin (written by scripts/bench.sh) -->"
	echo "## Load: anyroute, its peers and a bare net/http server, side by side"
	echo
	echo "Command: \`make bench\` (\`scripts/bench.sh\`), $(date -u +%Y-%m-%d). Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(go version | awk '{print $3}'), $(wrk --version 2>&1 | awk 'NR == 1 {print $1, $2}'); load average (1, 5, 15 min) $LOAD_BEFORE before the run, $LOAD_AFTER after."
	echo "Each server runs alone, pinned to core $SERVER_CPU; \`wrk -t1 -c$CONNS -d$DURATION --latency\` runs on core $LOAD_CPU after a $WARMUP warm-up, always a \`GET\` with only a Host header. $ROUNDS rounds interleave every case (forward in odd rounds, backward in even ones); the tables show medians over the rounds, and each ratio is taken against the baseline measured in the same round, its range over the rounds in brackets. Server CPU per request is the server process's user + system time during the measured run over the requests wrk completed; \"core busy\" is that time over the run's wall time (near 1: the server's core was the bottleneck; well under 1: the load core or the machine was). Jaeger (the tracing cases' agent and OTLP receiver) and the upstream of the call cases share the load core."
	if [[ -n $NOISY ]]; then
		echo
		echo "**This run is not conclusive:** the servers did not have their core to themselves (median core busy $NOISY, under $MIN_BUSY), because the machine was running other work (see the load average) or the load core was the bottleneck. Its ratios measure the machine's noise as much as the servers, and each verdict says so; CPU per request, which does not depend on how much of the core a server got, is the steadier figure in such a run, though contention inflates it too."
	fi
	echo
	echo "### anyroute against bare net/http, by tracing backend"
	echo
	echo "The bare server (\`bench/bare\`) answers the same JSON echo as anyroute (method, path, query, route, status, instance, trace id, a request id also in the \`X-Request-Id\` header) with encoding/json, no middleware and no metrics, with anyroute's default server timeouts. anyroute runs with its embedded defaults (metrics on, access log off) and each case's \`tracing\` block; every traced case reports under its own service name, and the target column says whether Jaeger received its spans. Targets (issue 17): tracing none ≥ 0.97 of bare, jaeger probabilistic 0.01 ≥ 0.95, every request traced ≥ 0.80 with jaeger and with otlp."
	echo
	echo "$tracing_table"
	echo
	echo "### Peers"
	echo
	echo "Built from the Go module proxy at pinned versions by \`scripts/tools.sh\` (\`go install\` takes all three), each run with its per-request log off and otherwise its defaults. Each is asked for the nearest it has to a JSON echo of method and path; none has exactly that: podinfo's \`/api/echo\` answers the posted body (empty for a \`GET\`: a 202 with no body), so \`/headers\`; go-httpbin's \`/anything\` is such an echo; fortio's \`/debug\` is a text one (its \`/\` answers an empty 200). Builds: $(for t in podinfo go-httpbin fortio; do printf '%s: %s; ' "$t" "$(cat .tools/stamps/"$t"-* 2>/dev/null || echo "not built")"; done | sed 's/; $/./')"
	echo
	echo "$peers_table"
	echo
	echo "### One upstream call"
	echo
	echo "anyroute with one route whose every request calls an upstream (\`{\"name\": \"hop\", \"match\": \"/*\", \"calls\": [{\"name\": \"up\", \"url\": \"http://127.0.0.1:$UP_PORT/up/{path}\", \"timeout\": \"1s\"}]}\`), against the bare server with \`-upstream\`, which makes the same call (\`GET\`, x-request-id and hop headers, 1 s timeout, the answer nested in the echo) with the same client settings (\`http.DefaultTransport\` cloned, no proxy, 64 kept-alive connections per host, as \`transport/client.go\`). The upstream is a plain anyroute on the load core, started fresh for each run; it reports the TCP connections it accepted when its API stops (\`connections_accepted\`) and the calls it answered (\`app_requests_total\`), counted over the warm-up and the measured run together. Connections are reused when that count stays near the $CONNS client connections however many calls were made: the connections open 1 s into the measured run are the live pool, and the total is up to about twice it, because when the warm-up's wrk stops it closes its connections with requests in flight, which cancels their calls, and a cancelled call closes its connection. Target (issue 17): ≥ 0.90 of the bare caller."
	echo
	echo "$call_table"
	echo
	echo "### Memory"
	echo
	echo "RSS one second after the server's first request, then with $IDLE_CONNS keep-alive connections open and idle (\`bench/conns\`: each sends one request, reads the answer and stays open), one second after the last opened, each server's connections from a loopback address of their own; the file limit raised to its hard limit for the run. A server that closes idle connections shows fewer established than opened (go-httpbin sets no idle timeout, so its 5 s read timeout closes idle connections), and the figure per connection is over those established."
	echo
	echo "$memory_table"
	echo "<!-- load:end -->"
)
scripts/section.sh "$DOC" load <<<"$section"
echo "bench: wrote $DOC"

# The README's performance paragraph: the ratios of this run, no absolute numbers.
[[ -n $README ]] && grep -q '<!-- perf:begin' "$README" || exit 0
med() { fmt "$(ratio "$@" | median)" %.2f; }
rng() {
	local rs
	rs=$(ratio "$@")
	printf '%s–%s' "$(fmt "$(lowest <<<"$rs")" %.2f)" "$(fmt "$(highest <<<"$rs")" %.2f)"
}
mem() { awk -F'\t' -v c="$1" -v n="$2" '$1 == c {print $n}' "$MEMORY"; }
paragraph=$(
	echo "<!-- perf:begin (written by scripts/bench.sh) -->"
	s="\`make bench\` measures anyroute beside a bare net/http server answering the same JSON echo, in one run of $ROUNDS interleaved rounds; the figures are ratios of the bare server's, medians over the rounds with their range ([docs/benchmarks.md](docs/benchmarks.md) has the tables, the peers' requests and the method)."
	if ran none; then
		s="$s With metrics on and tracing off anyroute serves **$(med none 3)** ($(rng none 3)) of the bare server's throughput, at $(med none 8)× its CPU per request"
		ran jaeger-prob && s="$s; with jaeger probabilistic 0.01 **$(med jaeger-prob 3)**"
		ran jaeger-const && s="$s; tracing every request, jaeger **$(med jaeger-const 3)** ($(rng jaeger-const 3))"
		ran otlp-const && s="$s and otlp **$(med otlp-const 3)** ($(rng otlp-const 3))"
		s="$s."
	fi
	if ran anyroute-call; then
		s="$s A route that makes one upstream call per request serves **$(med anyroute-call 3)** ($(rng anyroute-call 3)) of a bare server making the same call with the same client settings, over kept-alive connections: the upstream accepted $(fmt "$(column anyroute-call 11 | median)") connections in a run of $(fmt "$(column anyroute-call 12 | median)") calls."
	fi
	peers=""
	for c in podinfo go-httpbin fortio; do
		ran "$c" && ran none && peers="$peers${peers:+, }$(med none 3 "$c")× ${NAME[$c]}'s"
	done
	[[ -z $peers ]] || s="$s Against the peers users pick instead, anyroute with tracing off serves $peers throughput (podinfo's request does comparable work: JSON and per-request metrics)."
	if [[ -s $MEMORY ]] && [[ -n $(mem none 2) && -n $(mem bare 2) ]]; then
		s="$s With $IDLE_CONNS idle keep-alive connections open its RSS is $(awk -v a="$(mem none 3)" -v b="$(mem bare 3)" 'BEGIN {printf "%.2f", a / b}')× the bare server's (idle, $(awk -v a="$(mem none 2)" -v b="$(mem bare 2)" 'BEGIN {printf "%.1f", a / b}')×)."
	fi
	[[ -z $NOISY ]] || s="$s These figures come from a run on a machine busy with other work (the servers' cores $NOISY busy): they are noisy, and the benchmark doc marks its verdicts inconclusive."
	fold -s -w 100 <<<"$s" | sed 's/ *$//'
	echo "<!-- perf:end -->"
)
scripts/section.sh "$README" perf <<<"$paragraph"
echo "bench: wrote the performance paragraph of $README"
