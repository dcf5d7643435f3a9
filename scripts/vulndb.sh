#!/usr/bin/env bash
# Build a local Go vulnerability database for govulncheck from a pinned
# golang.org/x/vulndb module, as vuln.go.dev cannot be reached from here.
#
# Usage: scripts/vulndb.sh          build it (unless already built for the pin)
#        scripts/vulndb.sh --print  build it, then print its directory
#
# Then:  .tools/bin/govulncheck -db file://$PWD/.tools/vulndb ./...
#
# Env:   TOOLS_DIR  root of the tool tree (default: <repo>/.tools); the
#                   database goes to TOOLS_DIR/vulndb.
#
# The vulndb module (served by the Go module proxy) holds every published
# entry as OSV JSON under data/osv/. Its own cmd/indexdb turns such a folder
# into the v1 layout that govulncheck's file:// client reads (checked against
# golang.org/x/vuln v1.9.0, internal/client): index/db.json,
# index/modules.json, index/vulns.json and ID/GO-YYYY-NNNN.json (plus .gz
# copies, which the file client ignores). indexdb works offline; cmd/gendb
# is not used, as it needs the vulndb git repo, which the module zip lacks.
#
# The database is rebuilt only when VULNDB_VERSION changes (a stamp file in
# the database records the version it was built from). To update the data,
# pin a newer pseudo-version, e.g. from `go list -m golang.org/x/vulndb@latest`.
set -euo pipefail

VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
TOOLS_DIR=$(realpath -m "$TOOLS_DIR")
SRC=$TOOLS_DIR/src
OUT=$TOOLS_DIR/vulndb
STAMP=$OUT/.stamp

# As in tools.sh: no toolchain downloads, no enclosing go.work, no VCS stamps.
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false

built() {
	[[ -f $OUT/index/modules.json && -f $STAMP &&
		$(head -n1 "$STAMP") == "golang.org/x/vulndb@$VULNDB_VERSION" ]]
}

build() {
	local json dir copy start n_osv n_id
	start=$SECONDS
	echo "vulndb $VULNDB_VERSION: building ..."
	# Download the module from the proxy (run in src/, whose stub go.mod keeps
	# the project's own go.mod out of it) and find it in the module cache.
	json=$(cd "$SRC" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION")
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[[ -n $dir && -d $dir/data/osv ]] || {
		echo "$json" >&2
		return 1
	}
	# The module cache is read-only and -mod=mod may need to touch go.mod or
	# go.sum: build indexdb in a writable copy (the OSV data is read from the
	# cache itself, so only the code is copied).
	copy=$SRC/vulndb-$VULNDB_VERSION
	rm -rf "$copy"
	mkdir -p "$copy"
	cp -R "$dir/go.mod" "$dir/go.sum" "$dir/cmd" "$dir/internal" "$copy/"
	chmod -R u+w "$copy"
	(cd "$copy" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath -o indexdb ./cmd/indexdb)

	rm -rf "$OUT.tmp"
	"$copy/indexdb" -vulns "$dir/data/osv" -out "$OUT.tmp"
	n_osv=$(find "$dir/data/osv" -maxdepth 1 -name '*.json' | wc -l)
	n_id=$(find "$OUT.tmp/ID" -maxdepth 1 -name '*.json' | wc -l)
	if [[ $n_osv -eq 0 || $n_osv -ne $n_id || ! -s $OUT.tmp/index/modules.json ]]; then
		echo "vulndb: expected $n_osv entries in $OUT.tmp/ID, found $n_id" >&2
		return 1
	fi
	printf 'golang.org/x/vulndb@%s\n%s entries, indexed by its cmd/indexdb with %s\n' \
		"$VULNDB_VERSION" "$n_id" "$(go env GOVERSION)" >"$OUT.tmp/.stamp"
	rm -rf "$OUT"
	mv "$OUT.tmp" "$OUT"
	# The copy is only needed to build; the Go build cache keeps a rebuild fast.
	rm -rf "$copy"
	echo "vulndb $VULNDB_VERSION: $n_id entries built in $((SECONDS - start))s"
}

main() {
	local print=false
	case ${1:-} in
	"") ;;
	--print) print=true ;;
	-h | --help | help)
		sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*)
		echo "vulndb.sh: unknown argument '$1'" >&2
		exit 2
		;;
	esac
	mkdir -p "$SRC"
	[[ -f $SRC/go.mod ]] || printf 'module anyroute.local/tools\n\ngo 1.26.0\n' >"$SRC/go.mod"
	# One build at a time across concurrent runs (own lock: tools.sh's lock
	# may be held for minutes by unrelated tool builds).
	exec 9>"$TOOLS_DIR/.vulndb.lock"
	flock 9
	if built; then
		echo "vulndb $VULNDB_VERSION: cached" >&2
	else
		build >&2
	fi
	if $print; then
		echo "$OUT"
	fi
}

main "$@"
