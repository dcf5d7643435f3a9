#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, with no registry (issue 26): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd with runc and bridge CNI, a
# kubelet that registers as a node, kube-proxy and CoreDNS, running real pods from images built
# and imported here. `make cluster` and the e2e (test/e2e) start it through `up`;
# docs/autoscaling.md, "A real node", says how it is built, what it costs and what it proves.
#
# Usage: scripts/node.sh up           control plane, containerd, a registered kubelet, kube-proxy, CoreDNS
#        scripts/node.sh standalone   containerd and a kubelet without an API server (static pods)
#        scripts/node.sh runtime      containerd only, with the images imported
#        scripts/node.sh images       build the node's own images: pause, CoreDNS, metrics-server
#        scripts/node.sh import IMAGE...  copy Docker images (make images) into containerd
#        scripts/node.sh metrics-server  deploy metrics-server (after up; kubectl top)
#        scripts/node.sh status       what runs, the node and its pods
#        scripts/node.sh down         stop everything, remove its pods, mounts, cgroups and bridge
#
# Env:   NODE_DIR   state, logs and configs (default: <repo>/.node); kubeconfig at NODE_DIR/kubeconfig
#        TOOLS_DIR  the tool tree scripts/tools.sh fills (default: <repo>/.tools)
#        HPA_SYNC_PERIOD  the controller manager's HPA sync period (default 15s, as in a cluster)
#
# Needs root, cgroup v1 or v2, overlayfs, Debian's runc (scripts/deps.sh runc) and the tools
# `scripts/tools.sh etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet
# containerd cni-plugins crictl kubectl coredns` builds (metrics-server for `metrics-server`).
# Everything listens on loopback only but the API server and the kubelet (on the node address
# 10.244.0.1, which nothing routes to beyond this machine); the pods get
# 10.244.0.0/24 on the bridge arnode0, reachable from this machine only (no masquerading; one
# iptables rule lets bridged pod-to-pod traffic past Docker's FORWARD DROP policy).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=$(realpath -m "${TOOLS_DIR:-$ROOT/.tools}")
BIN=$TOOLS_DIR/bin
NODE_DIR=$(realpath -m "${NODE_DIR:-$ROOT/.node}")
RUN=$NODE_DIR/run
SOCK=$RUN/containerd.sock
NODE_NAME=anyroute-node
# The kubelet 1.37's default sandbox image (and containerd 2.4's): the node's own pause image is
# tagged so, so nothing ever tries to pull it.
PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
# The pins are scripts/tools.sh's.
pin() { "$ROOT/scripts/tools.sh" list | awk -v n="$1" '$1 == n { print $2 }'; }
METRICS_SERVER_VERSION=$(pin metrics-server)
METRICS_SERVER_IMAGE=docker.io/library/metrics-server:$METRICS_SERVER_VERSION
COREDNS_IMAGE=docker.io/library/coredns:$(pin coredns)
# The cluster DNS Service's address and domain (the kubelet gives them to every pod).
DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
POD_CIDR=10.244.0.0/24
BRIDGE=arnode0
# The node's address: the pods' gateway on the bridge, made before the kubelet starts, since the
# kubelet refuses a loopback node IP and the pods (metrics-server) must reach the kubelet's port.
NODE_IP=10.244.0.1
FORWARD_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment anyroute-node -j ACCEPT)
# The kubelet's parent cgroup (in every v1 hierarchy), so that down removes exactly its own tree.
CGROUP_ROOT=/anyroute-node
ETCD_PORT=${ETCD_PORT:-23790}
APISERVER_PORT=${APISERVER_PORT:-16443}
KUBELET_PORT=${KUBELET_PORT:-10250}
# The kubelet sets these kernel tunables (protectKernelDefaults off); down puts them back.
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
	kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

usage() { sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
log() { printf '%s node.sh: %s\n' "$(date -u +%T)" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

need() {
	local t
	[[ $(id -u) -eq 0 ]] || die "needs root (mounts, cgroups, network namespaces)"
	command -v runc >/dev/null || die "no runc: scripts/deps.sh runc"
	for t in "$@"; do
		[[ -x $BIN/$t ]] || die "no $BIN/$t: scripts/tools.sh $t"
	done
}

# start NAME CMD...: run CMD in its own session, logging to NODE_DIR/logs/NAME.log.
start() {
	local name=$1
	shift
	mkdir -p "$NODE_DIR/logs" "$RUN"
	setsid "$@" >"$NODE_DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN/$name.pid"
	log "$name started (pid $!, log $NODE_DIR/logs/$name.log)"
}

crictl() { "$BIN/crictl" --config "$NODE_DIR/crictl.yaml" "$@"; }

running() { [[ -f $RUN/$1.pid ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# wait_for WHAT SECONDS NAME CMD...: poll CMD until it succeeds, failing if NAME's process exits.
wait_for() {
	local what=$1 secs=$2 name=$3 start=$SECONDS
	shift 3
	until "$@" >/dev/null 2>&1; do
		running "$name" || die "$name exited while waiting for $what: tail $NODE_DIR/logs/$name.log"
		((SECONDS - start < secs)) || die "no $what after ${secs}s: see $NODE_DIR/logs/$name.log"
		sleep 0.5
	done
	log "$what after $((SECONDS - start))s"
}

stop() {
	local name=$1 pid i
	[[ -f $RUN/$name.pid ]] || return 0
	pid=$(cat "$RUN/$name.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -KILL "$pid" 2>/dev/null || true
		log "$name stopped"
	fi
	rm -f "$RUN/$name.pid"
}

# oci_archive OUT NAME ROOTFS USER ENTRYPOINT...: a one-layer OCI image archive of ROOTFS that
# `ctr images import` takes, named NAME, without docker or a registry.
oci_archive() {
	local out=$1 name=$2 rootfs=$3 user=$4 w arch layer lsize cfg csize man msize entry
	shift 4
	w=$(mktemp -d)
	arch=$(go env GOARCH)
	mkdir -p "$w/blobs/sha256"
	tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$w/layer" .
	layer=$(sha256sum <"$w/layer" | cut -d' ' -f1) lsize=$(stat -c %s "$w/layer")
	mv "$w/layer" "$w/blobs/sha256/$layer"
	entry=$(printf '"%s",' "$@")
	printf '{"architecture":"%s","os":"linux","config":{"User":"%s","Entrypoint":[%s]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$arch" "$user" "${entry%,}" "$layer" >"$w/config"
	cfg=$(sha256sum <"$w/config" | cut -d' ' -f1) csize=$(stat -c %s "$w/config")
	mv "$w/config" "$w/blobs/sha256/$cfg"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
		"$cfg" "$csize" "$layer" "$lsize" >"$w/manifest"
	man=$(sha256sum <"$w/manifest" | cut -d' ' -f1) msize=$(stat -c %s "$w/manifest")
	mv "$w/manifest" "$w/blobs/sha256/$man"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$man" "$msize" "$arch" "$name" "${name##*:}" >"$w/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci-layout"
	tar -C "$w" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out.tmp" oci-layout index.json blobs
	mv "$out.tmp" "$out"
	rm -rf "$w"
}

# images: the node's own images, each a static Go binary on an empty root: pause
# (deployments/node/pause), CoreDNS and metrics-server (the binaries scripts/tools.sh built). The
# application's images come from Docker (make images, then `import`).
cmd_images() {
	local d=$NODE_DIR/images r
	mkdir -p "$d"
	r=$(mktemp -d)
	(cd "$ROOT/deployments/node/pause" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "-s -w" -o "$r/pause" .)
	oci_archive "$d/pause.tar" "$PAUSE_IMAGE" "$r" 65535:65535 /pause
	rm -rf "$r"
	if [[ -x $BIN/coredns ]]; then
		r=$(mktemp -d)
		cp "$BIN/coredns" "$r/"
		oci_archive "$d/coredns.tar" "$COREDNS_IMAGE" "$r" 65532:65532 /coredns
		rm -rf "$r"
	fi
	if [[ -x $BIN/metrics-server ]]; then
		r=$(mktemp -d)
		cp "$BIN/metrics-server" "$r/"
		oci_archive "$d/metrics-server.tar" "$METRICS_SERVER_IMAGE" "$r" 65532:65532 /metrics-server
		rm -rf "$r"
	fi
	log "images in $d: $(cd "$d" && echo *.tar)"
}

# import IMAGE...: Docker's images (make images builds anyroute:latest and anyroute-siege:latest)
# into containerd's k8s.io namespace, where pods with imagePullPolicy Never find them.
cmd_import() {
	local i
	[[ $# -gt 0 ]] || die "import: name the Docker images (make images: anyroute:latest anyroute-siege:latest)"
	running containerd || die "containerd is not running: scripts/node.sh up first"
	for i in "$@"; do
		docker image inspect "$i" >/dev/null 2>&1 || die "no Docker image $i: make images"
		docker save "$i" | "$BIN/ctr" -a "$SOCK" -n k8s.io images import - >/dev/null
		log "imported $i"
	done
}

write_containerd_config() {
	mkdir -p "$NODE_DIR/containerd" "$NODE_DIR/cni/net.d"
	cat >"$NODE_DIR/containerd/config.toml" <<EOF
version = 3
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
# NRI would listen on /var/run/nri; nothing here uses it.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins."io.containerd.cri.v1.runtime"]
  # Containers here lack CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below containerd's own
  # (-998 for the sandbox fails with "can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir rather than /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$NODE_DIR/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$BIN/cni-plugins"]
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 10\n' "$SOCK" "$SOCK" >"$NODE_DIR/crictl.yaml"
	# One bridge for the pods, no masquerade (traffic stays on this machine), addresses from
	# host-local kept under NODE_DIR.
	cat >"$NODE_DIR/cni/net.d/10-anyroute.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "anyroute-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

start_containerd() {
	running containerd && return 0
	write_containerd_config
	# The shim is looked up on PATH.
	start containerd env PATH="$BIN:$PATH" "$BIN/containerd" --config "$NODE_DIR/containerd/config.toml" --log-level info
	wait_for "containerd's CRI" 60 containerd crictl info
	local f
	[[ -f $NODE_DIR/images/pause.tar && (-f $NODE_DIR/images/coredns.tar || ! -x $BIN/coredns) ]] || cmd_images
	for f in "$NODE_DIR"/images/*.tar; do
		"$BIN/ctr" -a "$SOCK" -n k8s.io images import "$f" >/dev/null
	done
	log "images imported: $("$BIN/ctr" -a "$SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

# cgroups: the kubelet wants its --cgroup-root to exist in every v1 hierarchy; cpuset's needs the
# parent's CPUs and memory nodes before tasks can join it.
make_cgroups() {
	local h
	[[ -d /sys/fs/cgroup/cpu ]] || return 0
	for h in /sys/fs/cgroup/*/; do
		[[ $h == */unified/ ]] && continue
		mkdir -p "$h${CGROUP_ROOT#/}"
	done
	if [[ -d /sys/fs/cgroup/cpuset ]]; then
		cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset$CGROUP_ROOT/cpuset.cpus"
		cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset$CGROUP_ROOT/cpuset.mems"
	fi
}

save_sysctls() {
	local s
	[[ -f $RUN/sysctls ]] && return 0
	for s in "${SYSCTLS[@]}"; do
		[[ -f /proc/sys/$s ]] && echo "$s $(cat "/proc/sys/$s")"
	done >"$RUN/sysctls"
}

write_kubelet_config() {
	mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/manifests" "$NODE_DIR/pod-logs"
	cat >"$NODE_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1: refused by a 1.35+ kubelet unless said so (KEP-5573).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix://$SOCK
staticPodPath: $NODE_DIR/manifests
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_DIR/kubelet/volume-plugins
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
failSwapOn: false
# A shared build machine's disk and memory are not the node's to guard: evict nothing, collect
# no images (they cannot be pulled back).
evictionHard: {memory.available: "0%", nodefs.available: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
EOF
}

# make_bridge: the CNI bridge with the node's address, before any pod (the bridge plugin reuses it).
make_bridge() {
	ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
	# (Not `ip ... | grep -q`: with pipefail, grep quitting at the match can fail ip with SIGPIPE.)
	[[ $(ip -o addr show dev "$BRIDGE") == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Docker's FORWARD policy is DROP and bridged frames pass iptables here (br_netfilter), so
	# without this one rule pod-to-pod traffic on the bridge times out. down deletes it.
	iptables -C "${FORWARD_RULE[@]}" 2>/dev/null || iptables -I "${FORWARD_RULE[@]}"
}

start_kubelet() {
	local args=()
	running kubelet && return 0
	make_bridge
	make_cgroups
	save_sysctls
	write_kubelet_config
	args=(--config="$NODE_DIR/kubelet/config.yaml" --root-dir="$NODE_DIR/kubelet/root"
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=2)
	[[ ${1:-} == registered ]] && args+=(--kubeconfig="$NODE_DIR/kubeconfig")
	start kubelet "$BIN/kubelet" "${args[@]}"
	wait_for "kubelet healthz" 120 kubelet curl -fsS http://127.0.0.1:10248/healthz
}

start_control_plane() {
	local token
	need etcd kube-apiserver kubectl
	mkdir -p "$NODE_DIR/pki" "$NODE_DIR/etcd"
	if ! running etcd; then
		start etcd "$BIN/etcd" --name=node --data-dir="$NODE_DIR/etcd" \
			--listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
			--listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
			--initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
			--initial-cluster="node=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync --log-level=warn
		wait_for "etcd" 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
	fi
	running kube-apiserver && return 0
	[[ -f $NODE_DIR/pki/sa.key ]] || {
		openssl genrsa -out "$NODE_DIR/pki/sa.key" 2048 2>/dev/null
		openssl rsa -in "$NODE_DIR/pki/sa.key" -pubout -out "$NODE_DIR/pki/sa.pub" 2>/dev/null
	}
	# The aggregator's front-proxy: a CA and the client certificate the API server presents to
	# extension API servers (metrics-server), which trust requests signed by that CA.
	[[ -f $NODE_DIR/pki/front-proxy-client.crt ]] || (
		cd "$NODE_DIR/pki"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt \
			-subj /CN=front-proxy-ca -days 365 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr \
			-subj /CN=front-proxy-client 2>/dev/null
		openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key \
			-CAcreateserial -out front-proxy-client.crt -days 365 2>/dev/null
	)
	[[ -f $NODE_DIR/pki/tokens.csv ]] ||
		echo "$(openssl rand -hex 16),admin,admin,\"system:masters\"" >"$NODE_DIR/pki/tokens.csv"
	token=$(cut -d, -f1 "$NODE_DIR/pki/tokens.csv")
	start kube-apiserver "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
		--cert-dir="$NODE_DIR/pki/apiserver" \
		--authorization-mode=AlwaysAllow --token-auth-file="$NODE_DIR/pki/tokens.csv" \
		--service-account-issuer=https://kubernetes.default.svc \
		--service-account-key-file="$NODE_DIR/pki/sa.pub" --service-account-signing-key-file="$NODE_DIR/pki/sa.key" \
		--service-cluster-ip-range=10.96.0.0/24 --kubelet-preferred-address-types=InternalIP \
		--enable-aggregator-routing=true --requestheader-client-ca-file="$NODE_DIR/pki/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client --requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group --requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="$NODE_DIR/pki/front-proxy-client.crt" \
		--proxy-client-key-file="$NODE_DIR/pki/front-proxy-client.key" \
		--profiling=false --v=1
	cat >"$NODE_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "https://$NODE_IP:$APISERVER_PORT", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: node
  context: {cluster: node, user: admin}
current-context: node
EOF
	chmod 600 "$NODE_DIR/kubeconfig"
	wait_for "kube-apiserver" 120 kube-apiserver "$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" get --raw /readyz
}

# The controller manager with its default controllers: the node lifecycle controller lifts the
# node.kubernetes.io/not-ready taint the kubelet registers with (without it nothing is scheduled),
# the service-account and root-CA publishers give pods their token volume.
start_controller_manager() {
	running kube-controller-manager && return 0
	start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$NODE_DIR/kubeconfig" \
		--leader-elect=false --secure-port=0 --service-account-private-key-file="$NODE_DIR/pki/sa.key" \
		--root-ca-file="$NODE_DIR/pki/apiserver/apiserver.crt" --use-service-account-credentials=false \
		--horizontal-pod-autoscaler-sync-period="${HPA_SYNC_PERIOD:-15s}" --v=1
}

start_scheduler() {
	running kube-scheduler && return 0
	start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$NODE_DIR/kubeconfig" --leader-elect=false \
		--secure-port=0 --v=1
}

cmd_runtime() {
	need containerd ctr containerd-shim-runc-v2 cni-plugins crictl
	start_containerd
}

# The kubelet keeps a few iptables chains whatever the proxy mode (KUBE-FIREWALL, which drops
# non-loopback packets to 127.0.0.0/8 from INPUT and OUTPUT, and the KUBE-KUBELET-CANARY and
# KUBE-IPTABLES-HINT markers); down removes them with the kubelet that made them.
clean_kubelet_iptables() {
	local ipt tc
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		while "$ipt" -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
		while "$ipt" -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
		for tc in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY \
			mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
			if "$ipt" -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null; then "$ipt" -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null || true; fi
		done
	done
}

# kube-proxy in nftables mode: its rules live in its own "kube-proxy" tables (ip and ip6), apart
# from Docker's iptables chains, and go with them on down. Conntrack sysctls are left alone. At
# --v=3 it logs the endpoints of each Service it programs and each sync's end, so that a client's
# failure during a rollout can be put beside what the rules held at the time.
start_kube_proxy() {
	running kube-proxy && return 0
	mkdir -p "$NODE_DIR/kube-proxy"
	cat >"$NODE_DIR/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: "$NODE_DIR/kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
	start kube-proxy "$BIN/kube-proxy" --config="$NODE_DIR/kube-proxy/config.yaml" --v=3
	wait_for "kube-proxy healthz" 60 kube-proxy curl -fsS http://127.0.0.1:10256/healthz
}

cmd_standalone() {
	need containerd ctr containerd-shim-runc-v2 cni-plugins crictl kubelet
	start_containerd
	start_kubelet
}

cmd_up() {
	need containerd ctr containerd-shim-runc-v2 cni-plugins crictl kubelet kube-scheduler \
		kube-controller-manager kube-proxy coredns
	# The API server listens on the node address, not loopback: the kubernetes Service's endpoint
	# must be an address pods reach (in-cluster clients such as metrics-server dial 10.96.0.1).
	make_bridge
	start_control_plane
	start_containerd
	start_controller_manager
	start_kubelet registered
	start_scheduler
	start_kube_proxy
	wait_for "node $NODE_NAME Ready" 180 kubelet "$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" \
		wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
	start_dns
	log "up: export KUBECONFIG=$NODE_DIR/kubeconfig"
}

# CoreDNS as the cluster's DNS, the way kubeadm deploys it (kube-system, Service kube-dns at
# DNS_IP), with our image: it serves the cluster domain from the API server (in-cluster, through
# the kubernetes Service) and nothing else (no forwarding: nothing beyond this machine is reached).
# It listens on 1053 as a non-root user; the Service maps port 53 to it. Its ready plugin answers
# once the kubernetes plugin has synced, so the Deployment Available means names resolve.
start_dns() {
	"$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10, failureThreshold: 5}
        resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
	wait_for "CoreDNS Available" 180 kubelet "$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" \
		-n kube-system wait --for=condition=Available deploy/coredns --timeout=1s
}

# metrics-server as its own manifests deploy it (the pinned module's manifests/base), with the
# image built here and the kubelet's self-signed serving certificate accepted.
cmd_metrics-server() {
	local base d=$NODE_DIR/metrics-server
	need metrics-server kubectl
	running kube-apiserver || die "no API server: scripts/node.sh up first"
	[[ -f $NODE_DIR/images/metrics-server.tar ]] || cmd_images
	"$BIN/ctr" -a "$SOCK" -n k8s.io images import "$NODE_DIR/images/metrics-server.tar" >/dev/null
	base=$(cd "$TOOLS_DIR/src" && go mod download -json "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/manifests/base
	rm -rf "$d"
	mkdir -p "$d"
	cp -R "$base" "$d/base"
	chmod -R u+w "$d/base"
	cat >"$d/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [base]
images:
- name: gcr.io/k8s-staging-metrics-server/metrics-server
  newName: ${METRICS_SERVER_IMAGE%:*}
  newTag: $METRICS_SERVER_VERSION
patches:
- target: {kind: Deployment, name: metrics-server}
  patch: |
    - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --kubelet-insecure-tls}
EOF
	# (kustomize warns that the base's commonLabels are deprecated.)
	"$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" apply -k "$d" >/dev/null 2>&1 ||
		"$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" apply -k "$d"
	wait_for "metrics.k8s.io Available" 180 kubelet "$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" \
		wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=1s
}

cmd_status() {
	local n
	for n in etcd kube-apiserver kube-controller-manager kube-scheduler kube-proxy containerd kubelet; do
		if running "$n"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"; else echo "$n: not running"; fi
	done
	if running containerd; then crictl pods; fi
	if running kube-apiserver; then "$BIN/kubectl" --kubeconfig="$NODE_DIR/kubeconfig" get nodes,pods -A -o wide; fi
}

cmd_down() {
	local m s v h
	stop kube-proxy
	nft delete table ip kube-proxy 2>/dev/null || true
	nft delete table ip6 kube-proxy 2>/dev/null || true
	stop kubelet
	clean_kubelet_iptables
	if running containerd; then
		# Stopping the sandboxes tears down their CNI networking and mounts while containerd lives.
		crictl rmp -fa >/dev/null 2>&1 || log "crictl rmp -fa failed"
	fi
	stop containerd
	# Shims outlive containerd by design: each wrote its pid into its bundle under our state dir.
	for s in "$NODE_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
		if [[ -f $s ]] && kill -TERM "$(cat "$s")" 2>/dev/null; then log "shim $(cat "$s") stopped"; fi
	done
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	# Mounts under NODE_DIR (snapshots, the kubelet's volumes, network namespaces), deepest first.
	if [[ -d $NODE_DIR ]]; then
		while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" || true
		done < <(awk -v d="$NODE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
	fi
	# containerd's shims keep their sockets in /run/containerd/s whatever the state dir (a shim
	# stopped by signal leaves its socket): sockets nothing listens on go, then empty directories.
	for s in /run/containerd/s/*; do
		[[ -S $s ]] || continue
		ss -xlH | awk -v s="$s" '$5 == s { found = 1 } END { exit !found }' || rm -f "$s"
	done
	rmdir /run/containerd/s /run/containerd 2>/dev/null || true
	while iptables -D "${FORWARD_RULE[@]}" 2>/dev/null; do log "iptables FORWARD rule for $BRIDGE removed"; done
	ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE" && log "bridge $BRIDGE removed"
	for h in /sys/fs/cgroup/*/; do
		[[ -d $h${CGROUP_ROOT#/} ]] || continue
		find "$h${CGROUP_ROOT#/}" -depth -type d -exec rmdir {} + 2>/dev/null || log "cgroup $h${CGROUP_ROOT#/} still in use"
	done
	if [[ -f $RUN/sysctls ]]; then
		while read -r s v; do echo "$v" >"/proc/sys/$s" || true; done <"$RUN/sysctls"
		rm -f "$RUN/sysctls"
	fi
	log "down"
}

case ${1:-} in
up | standalone | runtime | images | metrics-server | status | down) "cmd_$1" ;;
import)
	shift
	cmd_import "$@"
	;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
