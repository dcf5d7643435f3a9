#!/usr/bin/env bash
# What a target needs and cannot get by itself, checked before anything long runs: each check that
# fails prints one line naming what is missing and how to get it, and exits 1.
#
# Usage: scripts/preflight.sh docker          Docker's daemon answers (make docker-check)
#        scripts/preflight.sh node            what the real node (scripts/node.sh: make e2e, make
#                                             cluster) needs: root, overlayfs, the cgroups the
#                                             kubelet asks for, Docker (make node-preflight)
#        scripts/preflight.sh packages [COMMAND...]
#                                             the rest of make test's needs, after node: the Debian
#                                             packages every suite needs, installed through
#                                             scripts/deps.sh where their command is missing, and
#                                             cgo; COMMAND... adds commands (make passes
#                                             debootstrap where no registry answers)
#
# Env:   PREFLIGHT_CGROUP_FS  where the cgroup hierarchies are mounted (default /sys/fs/cgroup);
#                             the test points it at a tree that lacks one
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
	echo "preflight: $*" >&2
	exit 1
}

check_docker() {
	local err
	command -v docker >/dev/null ||
		fail "Docker is required and there is no docker command (Debian: apt-get install docker.io docker-compose)"
	err=$(docker version -f '{{.Server.Version}}' 2>&1 >/dev/null) ||
		fail "Docker is required and no daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock} (${err##*$'\n'}): start dockerd, or set DOCKER_HOST"
}

# The kubelet refuses to start without the v1 hierarchies cpu, cpuacct, cpuset and memory (its
# system validation) and pids (its cgroup manager), or on v2 without those controllers; node.sh
# makes its --cgroup-root in each, so each must be writable (a container's cgroups are often
# mounted read-only, even for root). Both versions work; these machines run v1 (OFFLINE.md).
check_cgroups() {
	local fs=${PREFLIGHT_CGROUP_FS:-/sys/fs/cgroup} c controllers missing=()
	if [[ -f $fs/cgroup.controllers ]]; then
		read -r -a controllers <"$fs/cgroup.controllers"
		for c in cpu cpuset memory pids; do
			[[ " ${controllers[*]} " == *" $c "* ]] || missing+=("$c")
		done
		((${#missing[@]} == 0)) ||
			fail "cgroup v2 at $fs lacks the controllers ${missing[*]}, which the e2e's kubelet needs: enable them (cgroup.subtree_control) or boot with them"
		[[ -w $fs ]] || fail "cgroup v2 at $fs is read-only, and the e2e's kubelet makes its cgroups there: run where it is writable (a privileged container)"
		return
	fi
	for c in cpu cpuacct cpuset memory pids; do
		[[ -f $fs/$c/cgroup.procs ]] || missing+=("$c")
	done
	((${#missing[@]} == 0)) ||
		fail "no cgroup v1 hierarchy ${missing[*]} under $fs (nor cgroup v2), which the e2e's kubelet needs: mount them (mount -t cgroup -o NAME cgroup $fs/NAME)"
	for c in cpu cpuacct cpuset memory pids; do
		[[ -w $fs/$c ]] || fail "the cgroup hierarchy $fs/$c is read-only, and the e2e's kubelet makes its cgroups there: run where it is writable (a privileged container)"
	done
}

check_node() {
	[[ $(id -u) -eq 0 ]] ||
		fail "the real node (make e2e, make cluster, the end of make test) must run as root: it mounts, makes cgroups and a bridge, and apt-get installs what is missing (as a user: make test-unit test-integration fuzz, with the packages installed)"
	# containerd's snapshots are overlay mounts.
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
		fail "the kernel has no overlay filesystem, which the e2e's containerd needs (modprobe overlay)"
	check_cgroups
	check_docker
}

check_packages() {
	# git: versions and the build context; gcc: the race detector (cgo); docker-compose: the
	# compose test; prometheus, promtool, wrk: the real-binary tests; runc, ip, iptables, nft,
	# openssl, curl: the e2e's real node. Where it cannot install (no apt-get), deps.sh prints the
	# one line itself.
	scripts/deps.sh git gcc docker-compose prometheus promtool wrk runc ip iptables nft openssl curl "$@" || exit 1
	[[ $(go env CGO_ENABLED) == 1 ]] ||
		fail "cgo is off (CGO_ENABLED=$(go env CGO_ENABLED)), and the race detector needs it: unset CGO_ENABLED, or put gcc on PATH"
}

case ${1:-} in
docker) check_docker ;;
node)
	check_node
	echo "preflight: running as root, overlayfs and the kubelet's cgroups present, Docker answers"
	;;
packages)
	shift
	check_packages "$@"
	echo "preflight: packages present, cgo on"
	;;
*)
	sed -n '5,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
