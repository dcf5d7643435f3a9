#!/usr/bin/env bash
# Build the project's pinned external tools from Go modules into .tools/bin.
#
# Usage: scripts/tools.sh NAME...   build the named tools
#        scripts/tools.sh all       build every tool
#        scripts/tools.sh list      print "NAME VERSION" for every tool
#        scripts/tools.sh keda-crds the directory of the pinned KEDA CRDs
#
# Env:   TOOLS_DIR  root of the tool tree (default: <repo>/.tools), holding
#                   bin/ (binaries), stamps/ (NAME-VERSION build stamps) and
#                   src/ (reused build directories and wrapper modules).
#        TOOLS_CACHE  built tools kept across clones (default:
#                   ${XDG_CACHE_HOME:-~/.cache}/anyroute/tools; empty: none).
#
# A tool is rebuilt only when its binary or its NAME-VERSION stamp is missing,
# so changing a pin below rebuilds just that tool. What a build writes into
# bin/ is also kept in TOOLS_CACHE, under the tool's name and version, the Go
# release and this script's hash: a new clone copies it from there instead of
# building, as the Go build cache serves a rebuild (any change to this script
# builds again). Each tool has a lock (the tools built from one module share
# one), so a run that needs a tool another run is building waits for that
# build, and a run that needs other tools does not.
# Only the Go module proxy is needed (etcd alone may fall back to Debian's
# etcd-server package).
#
# Callers: helm keeps state under ~/.cache, ~/.config and ~/.local/share
# unless HELM_CACHE_HOME, HELM_CONFIG_HOME and HELM_DATA_HOME point at a
# project-local folder; set them when running helm. Jaeger should be started
# with `--config file:scripts/jaeger-config.yaml` (loopback-only ports).
set -euo pipefail

GOLANGCI_LINT_VERSION=v2.15.0
GOVULNCHECK_VERSION=v1.9.0
HELM_VERSION=v3.22.0
JAEGER_VERSION=v1.76.0
JAEGER_V2_VERSION=v2.13.0 # the Jaeger v2 release cut from the v1.76.0 tag
ETCD_VERSION=v3.5.21
K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2
PROMETHEUS_ADAPTER_VERSION=v0.12.0
# Peers of the load benchmark (bench/driver). podinfo's tags have no "v" prefix, so the proxy
# knows 6.9.2 (what @latest gives) only by this pseudo-version of its commit.
PODINFO_VERSION=v1.8.1-0.20250910200901-e86405a8674e
PODINFO_RELEASE=6.9.2
GO_HTTPBIN_VERSION=v2.26.0
FORTIO_VERSION=v1.63.0 # @latest (1.75.x) needs a module the proxy refuses
KEDA_VERSION=v2.21.0 # keda-operator, keda-adapter and the CRDs (keda-crds)
# make release: GoReleaser, the SBOM generator its sboms step runs, and cosign for the optional
# signature of checksums.txt (v2.18.2 and newer GoReleasers need a newer Go than the proxy serves).
GORELEASER_VERSION=v2.17.0
CYCLONEDX_GOMOD_VERSION=v1.10.0
COSIGN_VERSION=v2.6.5
# A real node (issue 26, in progress; docs/autoscaling.md, "A real node"): kubelet, kube-scheduler
# and kube-proxy come from the Kubernetes wrapper above; containerd v2 (the kubelet 1.37 wants a
# 2.x runtime), its ctr client and runc shim, the CNI plugins the bridge network needs, and crictl.
# runc itself is Debian's package (scripts/deps.sh runc): the module's build needs cgo and
# libseccomp's headers.
CONTAINERD_VERSION=v2.4.2
CNI_PLUGINS_VERSION=v1.10.0
CRICTL_VERSION=v1.37.0
METRICS_SERVER_VERSION=v0.8.0
# CoreDNS, the node's cluster DNS: a wrapper main that plugs in only the plugins the node's Corefile
# uses (the release's own main links every plugin, with the AWS, Azure and Google SDKs).
COREDNS_VERSION=v1.15.0
COREDNS_PLUGINS=(errors health ready kubernetes cache loadbalance)
# Prometheus with its Kubernetes service discovery, for the e2e on the real node: Debian's package
# is built without it (and without most discovery). v0.316.0 is the module version of v3.16.0; only
# the Kubernetes discovery is linked in (the module's remove_all_sd and enable_kubernetes_sd tags).
PROMETHEUS_VERSION=v0.316.0
PROMETHEUS_RELEASE=3.16.0

TOOLS=(golangci-lint govulncheck helm jaeger etcd kube-apiserver
	kube-controller-manager kubectl prometheus-adapter podinfo go-httpbin fortio)
TOOLS+=(keda-operator keda-adapter)
TOOLS+=(goreleaser cyclonedx-gomod cosign)
TOOLS+=(kubelet kube-scheduler kube-proxy containerd cni-plugins crictl metrics-server coredns prometheus)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${TOOLS_DIR:-$ROOT/.tools}
TOOLS_DIR=$(realpath -m "$TOOLS_DIR")
BIN=$TOOLS_DIR/bin
STAMPS=$TOOLS_DIR/stamps
SRC=$TOOLS_DIR/src
TOOLS_CACHE=${TOOLS_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/anyroute/tools}

# No toolchain downloads, no go.work from an enclosing directory, and no VCS
# stamping from the project's own git repo (build dirs live inside it).
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false

usage() {
	sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

version_of() {
	case $1 in
	golangci-lint) echo "$GOLANGCI_LINT_VERSION" ;;
	govulncheck) echo "$GOVULNCHECK_VERSION" ;;
	helm) echo "$HELM_VERSION" ;;
	jaeger) echo "$JAEGER_VERSION" ;;
	etcd) echo "$ETCD_VERSION" ;;
	kube-apiserver | kube-controller-manager | kubectl) echo "$K8S_VERSION" ;;
	kubelet | kube-scheduler | kube-proxy) echo "$K8S_VERSION" ;;
	containerd) echo "$CONTAINERD_VERSION" ;;
	cni-plugins) echo "$CNI_PLUGINS_VERSION" ;;
	crictl) echo "$CRICTL_VERSION" ;;
	metrics-server) echo "$METRICS_SERVER_VERSION" ;;
	coredns) echo "$COREDNS_VERSION" ;;
	prometheus) echo "$PROMETHEUS_VERSION" ;;
	prometheus-adapter) echo "$PROMETHEUS_ADAPTER_VERSION" ;;
	keda-operator | keda-adapter) echo "$KEDA_VERSION" ;;
	podinfo) echo "$PODINFO_VERSION" ;;
	go-httpbin) echo "$GO_HTTPBIN_VERSION" ;;
	fortio) echo "$FORTIO_VERSION" ;;
	goreleaser) echo "$GORELEASER_VERSION" ;;
	cyclonedx-gomod) echo "$CYCLONEDX_GOMOD_VERSION" ;;
	cosign) echo "$COSIGN_VERSION" ;;
	*) return 1 ;;
	esac
}

# go_install MODULE_PACKAGE VERSION [go install flags...]
go_install() {
	local pkg=$1 version=$2
	shift 2
	GOBIN=$BIN go install -trimpath "$@" "$pkg@$version"
}

# module_dir MODULE VERSION: download a module and print its module-cache dir.
module_dir() {
	local json dir
	json=$(cd "$SRC" && go mod download -json "$1@$2")
	dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
	[[ -n $dir && -d $dir ]] || {
		echo "$json" >&2
		return 1
	}
	echo "$dir"
}

# module_copy MODULE VERSION NAME: a writable copy of a module under src/,
# made once and reused (the module cache is read-only).
module_copy() {
	local dst=$SRC/$3-$2 dir
	if [[ ! -f $dst/.copied ]]; then
		dir=$(module_dir "$1" "$2")
		rm -rf "$dst" "$dst.tmp"
		cp -R "$dir" "$dst.tmp"
		chmod -R u+w "$dst.tmp"
		touch "$dst.tmp/.copied"
		mv "$dst.tmp" "$dst"
	fi
	echo "$dst"
}

build_golangci-lint() {
	go_install github.com/golangci/golangci-lint/v2/cmd/golangci-lint "$GOLANGCI_LINT_VERSION"
}

build_govulncheck() {
	go_install golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION"
}

# helm's own Makefile stamps the Kubernetes version its client-go speaks (major + 1, minor) into
# the chart and lint packages; without it helm assumes 1.20 and refuses charts that need newer.
build_helm() {
	local dir clientgo major minor h=helm.sh/helm/v3
	dir=$(module_dir $h "$HELM_VERSION")
	clientgo=$(awk '$1 == "k8s.io/client-go" { print $2 }' "$dir/go.mod")
	[[ $clientgo =~ ^v([0-9]+)\.([0-9]+)\. ]] || {
		echo "helm $HELM_VERSION: no k8s.io/client-go version in $dir/go.mod" >&2
		return 1
	}
	major=$((BASH_REMATCH[1] + 1)) minor=${BASH_REMATCH[2]}
	go_install $h/cmd/helm "$HELM_VERSION" -ldflags "-X $h/internal/version.version=$HELM_VERSION \
		-X $h/internal/version.gitTreeState=clean \
		-X $h/pkg/chartutil.k8sVersionMajor=$major -X $h/pkg/chartutil.k8sVersionMinor=$minor \
		-X $h/pkg/lint/rules.k8sVersionMajor=$major -X $h/pkg/lint/rules.k8sVersionMinor=$minor"
}

# go install refuses Jaeger (its go.mod has replace directives): build a copy.
build_jaeger() {
	local dir v=github.com/jaegertracing/jaeger/internal/version
	dir=$(module_copy github.com/jaegertracing/jaeger "$JAEGER_VERSION" jaeger)
	(cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-ldflags "-X $v.latestVersion=$JAEGER_V2_VERSION" \
		-o "$BIN/.jaeger.tmp" ./cmd/jaeger)
	mv -f "$BIN/.jaeger.tmp" "$BIN/jaeger"
}

# go install refuses etcd too: a wrapper module requiring the server module
# builds its main package. Falls back to Debian's etcd-server (3.4).
build_etcd() {
	local dir=$SRC/etcd-$ETCD_VERSION
	mkdir -p "$dir"
	if [[ ! -f $dir/go.mod ]]; then
		printf 'module anyroute.local/tools/etcd\n\ngo 1.23.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
			"$ETCD_VERSION" >"$dir/go.mod"
	fi
	if (cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-o "$BIN/.etcd.tmp" go.etcd.io/etcd/server/v3); then
		mv -f "$BIN/.etcd.tmp" "$BIN/etcd"
		return 0
	fi
	echo "etcd $ETCD_VERSION: go build failed, falling back to Debian's etcd-server" >&2
	if [[ ! -x /usr/bin/etcd ]]; then
		# Wait for a concurrent apt/dpkg run instead of failing on its lock.
		local apt=(apt-get -o DPkg::Lock::Timeout=600)
		export DEBIAN_FRONTEND=noninteractive
		"${apt[@]}" install -y etcd-server >&2 ||
			{ "${apt[@]}" update >&2 && "${apt[@]}" install -y etcd-server >&2; }
	fi
	ln -sf /usr/bin/etcd "$BIN/etcd"
	STAMP_NOTE="debian etcd-server: $(/usr/bin/etcd --version | head -n1)"
}

# Kubernetes: a wrapper module requiring k8s.io/kubernetes, with every staging
# module (replaced by ./staging/... in its own go.mod) replaced by its
# published release, as kubernetes' go.mod replaces are ignored for a
# dependency. One wrapper serves kube-apiserver, kube-controller-manager and
# kubectl, so they share its go.sum and the build cache.
k8s_wrapper() {
	local dir=$SRC/kubernetes-$K8S_VERSION moddir mods m
	if [[ ! -f $dir/go.mod ]]; then
		mkdir -p "$dir"
		moddir=$(module_dir k8s.io/kubernetes "$K8S_VERSION")
		# Staging modules that kubernetes requires (others, e.g. the sample
		# modules, are not in the build and not all are published).
		mods=$(awk '
			$2 == "=>" && $1 ~ /^k8s\.io\// && $3 ~ /^\.\/staging\// { staged[$1] = 1 }
			$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { required[$1] = 1 }
			END { for (m in staged) if (m in required) print m }' "$moddir/go.mod" | sort)
		[[ -n $mods ]] || {
			echo "no staging modules found in $moddir/go.mod" >&2
			return 1
		}
		{
			printf 'module anyroute.local/tools/kubernetes\n\ngo 1.26.0\n\n'
			printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
			for m in $mods; do
				printf '\t%s => %s %s\n' "$m" "$m" "$K8S_STAGING_VERSION"
			done
			printf ')\n'
		} >"$dir/go.mod.tmp"
		mv "$dir/go.mod.tmp" "$dir/go.mod"
	fi
	echo "$dir"
}

# build_k8s NAME: build k8s.io/kubernetes/cmd/NAME from the wrapper module.
build_k8s() {
	local name=$1 dir minor v=k8s.io/component-base/version
	dir=$(k8s_wrapper)
	minor=${K8S_VERSION#v*.}
	minor=${minor%%.*}
	(cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
		-o "$BIN/.$name.tmp" "k8s.io/kubernetes/cmd/$name")
	mv -f "$BIN/.$name.tmp" "$BIN/$name"
}

build_kube-apiserver() { build_k8s kube-apiserver; }
build_kube-controller-manager() { build_k8s kube-controller-manager; }
build_kubectl() { build_k8s kubectl; }
build_kubelet() { build_k8s kubelet; }
build_kube-scheduler() { build_k8s kube-scheduler; }
build_kube-proxy() { build_k8s kube-proxy; }

# containerd v2: the daemon, its ctr client and the runc v2 shim, static (CGO_ENABLED=0; btrfs and
# devmapper need cgo and C headers, and the tags drop them outright), stamped as its Makefile does.
build_containerd() {
	local c=github.com/containerd/containerd/v2 cmd
	for cmd in containerd ctr containerd-shim-runc-v2; do
		CGO_ENABLED=0 go_install "$c/cmd/$cmd" "$CONTAINERD_VERSION" -tags "no_btrfs no_devmapper no_zfs" \
			-ldflags "-s -w -X $c/version.Version=$CONTAINERD_VERSION -X $c/version.Package=$c"
	done
}

# The CNI plugins a single-node bridge network needs, into bin/cni-plugins/ (the kubelet's and
# containerd's CNI bin dir: the plugins' names are too generic for bin/).
build_cni-plugins() {
	local p=github.com/containernetworking/plugins tmp=$BIN/.cni-plugins.tmp
	rm -rf "$tmp"
	CGO_ENABLED=0 GOBIN=$tmp go install -trimpath -ldflags "-s -w" \
		"$p/plugins/main/bridge@$CNI_PLUGINS_VERSION" "$p/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
		"$p/plugins/meta/portmap@$CNI_PLUGINS_VERSION" "$p/plugins/ipam/host-local@$CNI_PLUGINS_VERSION"
	rm -rf "$BIN/cni-plugins"
	mv "$tmp" "$BIN/cni-plugins"
}

build_crictl() {
	CGO_ENABLED=0 go_install sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
}

build_prometheus-adapter() {
	local dir
	dir=$(module_copy sigs.k8s.io/prometheus-adapter "$PROMETHEUS_ADAPTER_VERSION" prometheus-adapter)
	(cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-o "$BIN/.prometheus-adapter.tmp" ./cmd/adapter)
	mv -f "$BIN/.prometheus-adapter.tmp" "$BIN/prometheus-adapter"
}

# KEDA: go install refuses the module (its go.mod has a replace directive), so
# both binaries build inside one writable copy of it, sharing the build cache.
# `scripts/tools.sh keda-crds` prints the directory of the module's CRDs
# (config/crd/bases in the module cache), which the e2e applies and the helm
# tests validate the chart's ScaledObject against.
#
# The copy keeps only the scalers the project's ScaledObjects use, as CoreDNS
# keeps only its Corefile's plugins: KEDA's own build links all of its 80
# (the cloud providers', Datadog's, Kafka's, Temporal's clients among them:
# 3,338 packages; with these three, 1,554). A trigger of another type gets
# KEDA's own answer for an unknown one, "no scaler found for type".
KEDA_SCALERS="cpu memory prometheus"
KEDA_SCALER_FILES="cpu_memory_scaler.go prometheus_scaler.go"
keda_copy() {
	local dir
	dir=$(module_copy github.com/kedacore/keda/v2 "$KEDA_VERSION" keda-scalers)
	[[ -f $dir/.trimmed ]] || keda_trim "$dir" || return 1
	echo "$dir"
}

# keda_trim DIR: in KEDA's buildScaler, keep the cases of KEDA_SCALERS (and the
# default) between its TRIGGERS-START and TRIGGERS-END markers, and remove the
# other scalers' files from pkg/scalers (their tests stay, unbuilt). When the
# markers or a kept case are not found it fails, with the copy unchanged and
# unmarked, so that the next run tries again.
keda_trim() {
	local dir=$1 builder=$1/pkg/scaling/scalers_builder.go f
	awk -v keep="$KEDA_SCALERS" '
		BEGIN { n = split(keep, k, " "); for (i = 1; i <= n; i++) kept["\"" k[i] "\":"] = 1 }
		/\/\/ TRIGGERS-START/ { inside = 1; markers++; print; next }
		/\/\/ TRIGGERS-END/ { inside = 0; markers++; print; next }
		inside && /^\tcase / { on = ($2 in kept); found += on }
		inside && /^\t(switch |default:|}$)/ { on = 1 }
		!inside || on { print }
		END { if (markers != 2 || found != n) exit 1 }' "$builder" >"$builder.tmp" || {
		echo "keda: buildScaler's TRIGGERS markers or a case of \"$KEDA_SCALERS\" not found in $builder" >&2
		rm -f "$builder.tmp"
		return 1
	}
	mv "$builder.tmp" "$builder"
	for f in "$dir"/pkg/scalers/*_scaler.go; do
		[[ " $KEDA_SCALER_FILES " == *" ${f##*/} "* ]] || rm "$f"
	done
	# The one name a kept file takes from a removed one (azure_queue_scaler.go).
	printf '%s\n' 'package scalers' '' 'const externalMetricType = "External"' >"$dir/pkg/scalers/keda_scalers.go"
	touch "$dir/.trimmed"
}

# build_keda NAME CMD: build ./cmd/CMD of the KEDA module into bin/NAME.
build_keda() {
	local dir v=github.com/kedacore/keda/v2/version
	dir=$(keda_copy)
	(cd "$dir" && GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-ldflags "-s -w -X $v.Version=$KEDA_VERSION" \
		-o "$BIN/.$1.tmp" "./cmd/$2")
	mv -f "$BIN/.$1.tmp" "$BIN/$1"
}

build_keda-operator() { build_keda keda-operator operator; }
build_keda-adapter() { build_keda keda-adapter adapter; }
# The benchmark's peers: go install takes all three (none has a replace directive in its go.mod;
# fortio's is commented out), each stamped with its release as its own build would be.
build_podinfo() {
	local rev=${PODINFO_VERSION##*-}
	go_install github.com/stefanprodan/podinfo/cmd/podinfo "$PODINFO_VERSION" \
		-ldflags "-X github.com/stefanprodan/podinfo/pkg/version.REVISION=$rev"
	STAMP_NOTE="podinfo $PODINFO_RELEASE (commit $rev), $STAMP_NOTE"
}

build_go-httpbin() {
	go_install github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin "$GO_HTTPBIN_VERSION" \
		-ldflags "-X main.version=$GO_HTTPBIN_VERSION"
}

build_fortio() {
	go_install fortio.org/fortio "$FORTIO_VERSION"
}

# The release tools: go install takes all three, each stamped as its own release build is.
build_goreleaser() {
	go_install github.com/goreleaser/goreleaser/v2 "$GORELEASER_VERSION" \
		-ldflags "-X main.version=${GORELEASER_VERSION#v} -X main.builtBy=anyroute-tools.sh"
}

build_cyclonedx-gomod() {
	go_install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod "$CYCLONEDX_GOMOD_VERSION"
}

build_cosign() {
	CGO_ENABLED=0 go_install github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION" \
		-ldflags "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION"
}

# metrics-server: static, as its Makefile builds it; the real node runs it as a pod of its own image.
build_metrics-server() {
	local v=k8s.io/client-go/pkg/version
	CGO_ENABLED=0 go_install sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" \
		-ldflags "-s -w -X $v.gitVersion=$METRICS_SERVER_VERSION"
}

# CoreDNS: a wrapper module whose main imports the Corefile's plugins and runs coremain, as
# CoreDNS documents for a build with a chosen plugin set; static, like the image it goes into.
build_coredns() {
	local dir=$SRC/coredns-$COREDNS_VERSION p c=github.com/coredns/coredns
	mkdir -p "$dir"
	if [[ ! -f $dir/go.mod ]]; then
		printf 'module anyroute.local/tools/coredns\n\ngo 1.26.0\n\nrequire %s %s\n' "$c" "$COREDNS_VERSION" >"$dir/go.mod"
	fi
	{
		printf '// Written by scripts/tools.sh: CoreDNS with the plugins the node uses.\npackage main\n\nimport (\n'
		for p in "${COREDNS_PLUGINS[@]}"; do printf '\t_ "%s/plugin/%s"\n' "$c" "$p"; done
		printf '\n\t"%s/coremain"\n)\n\nfunc main() { coremain.Run() }\n' "$c"
	} >"$dir/main.go"
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" go build -trimpath \
		-ldflags "-s -w -X $c/coremain.GitCommit=$COREDNS_VERSION" -o "$BIN/.coredns.tmp" .)
	mv -f "$BIN/.coredns.tmp" "$BIN/coredns"
	STAMP_NOTE="$STAMP_NOTE; plugins ${COREDNS_PLUGINS[*]}"
}

# Prometheus: the web UI's assets are not in the module (no builtinassets tag), so the UI pages are
# absent; the API, which the e2e and anyroute doctor use, is whole.
build_prometheus() {
	local v=github.com/prometheus/common/version
	CGO_ENABLED=0 go_install github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION" \
		-tags "remove_all_sd enable_kubernetes_sd" \
		-ldflags "-s -w -X $v.Version=$PROMETHEUS_RELEASE -X $v.Branch=HEAD -X $v.BuildUser=anyroute-tools.sh"
	STAMP_NOTE="prometheus $PROMETHEUS_RELEASE with only the Kubernetes discovery, $STAMP_NOTE"
}

# cached NAME: its binary and the stamp of its pinned version are there.
cached() {
	[[ -x $BIN/$1 && -f $STAMPS/$1-$(version_of "$1") ]]
}

# lock_of NAME: the lock a build of NAME takes. The tools built from one module share its source
# copy or wrapper module, and so a lock; any other tool has its own.
lock_of() {
	case $1 in
	kube-* | kubectl | kubelet) echo kubernetes ;;
	keda-*) echo keda ;;
	*) echo "$1" ;;
	esac
}

# outputs_of NAME: what a build of NAME writes into bin/.
outputs_of() {
	case $1 in
	containerd) echo containerd ctr containerd-shim-runc-v2 ;;
	*) echo "$1" ;;
	esac
}

# cache_key NAME: TOOLS_CACHE's directory for NAME as this script, at its pins, builds it with
# this Go release.
cache_key() {
	local script
	script=$(sha256sum "${BASH_SOURCE[0]}")
	echo "$TOOLS_CACHE/$1-$(version_of "$1")-$(go env GOVERSION)-${script:0:16}"
}

# ensure NAME: unless NAME's binary and current stamp exist, copy it from TOOLS_CACHE or build it,
# holding NAME's lock (and looking again once it has it: the run that held it may have built NAME).
ensure() {
	local name=$1 version start stamp key tmp out
	version=$(version_of "$name")
	stamp=$STAMPS/$name-$version
	if cached "$name"; then
		echo "$name $version: cached"
		return 0
	fi
	exec 9>"$TOOLS_DIR/.lock-$(lock_of "$name")"
	flock 9
	key=
	[[ -z $TOOLS_CACHE ]] || key=$(cache_key "$name")
	if cached "$name"; then
		echo "$name $version: built by another run"
	elif [[ -n $key && -f $key/.stamp ]]; then
		cp -a "$key"/. "$BIN"/
		rm -f "$BIN/.stamp" "$STAMPS/$name"-v*
		cp "$key/.stamp" "$stamp"
		echo "$name $version: copied from $key"
	else
		echo "$name $version: building ..."
		start=$SECONDS
		STAMP_NOTE="built from Go modules with $(go env GOVERSION)"
		"build_$name"
		rm -f "$STAMPS/$name"-v*
		echo "$STAMP_NOTE" >"$stamp"
		echo "$name $version: built in $((SECONDS - start))s"
		if [[ -n $key ]]; then
			# Kept whole or not at all: copied aside, then renamed into place.
			tmp=$key.tmp.$$
			rm -rf "$tmp"
			mkdir -p "$tmp"
			for out in $(outputs_of "$name"); do
				cp -a "$BIN/$out" "$tmp"/
			done
			cp "$stamp" "$tmp/.stamp"
			rm -rf "$key"
			mv "$tmp" "$key"
		fi
	fi
	exec 9>&-
}

# src_module: a stub module in src/, so that go commands run there ignore the project's own go.mod
# (which may be mid-edit) and the repo's ./... skips src/. Renamed into place: runs that start
# together (make test's test-deps builds two tools at once) must not read it half written.
src_module() {
	mkdir -p "$SRC"
	[[ -f $SRC/go.mod ]] && return 0
	printf 'module anyroute.local/tools\n\ngo 1.26.0\n' >"$SRC/go.mod.$$"
	mv -f "$SRC/go.mod.$$" "$SRC/go.mod"
}

main() {
	local arg name names=()
	if [[ $# -eq 0 ]]; then
		usage >&2
		exit 2
	fi
	for arg in "$@"; do
		case $arg in
		-h | --help | help)
			usage
			exit 0
			;;
		list)
			for name in "${TOOLS[@]}"; do
				echo "$name $(version_of "$name")"
			done
			exit 0
			;;
		all) names+=("${TOOLS[@]}") ;;
		keda-crds)
			# Read-only, from the module cache: no build, no lock.
			src_module
			echo "$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")/config/crd/bases"
			exit 0
			;;
		*)
			if ! version_of "$arg" >/dev/null; then
				echo "tools.sh: unknown tool '$arg' (known: all ${TOOLS[*]})" >&2
				exit 2
			fi
			names+=("$arg")
			;;
		esac
	done
	mkdir -p "$BIN" "$STAMPS"
	src_module
	for name in "${names[@]}"; do
		ensure "$name"
	done
}

main "$@"
