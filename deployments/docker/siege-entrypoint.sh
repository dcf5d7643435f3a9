#!/bin/sh
# Entry point of the siege image. Configured by environment so compose files and the Kubernetes
# demo need no shell quoting:
#   SIEGE_URLS         space-separated URLs (required)
#   SIEGE_CONCURRENCY  simulated users (default 5)
#   SIEGE_DELAY        each user waits a random 0..N seconds between requests (default 1)
#   SIEGE_TIME         run time such as 30S, 5M, 1H (default: until stopped)
# Extra container arguments are passed on to siege.
set -eu
: "${SIEGE_URLS:?set SIEGE_URLS to one or more space-separated URLs}"

# Our own rc file, written fresh where siege looks for it: it pins the mode (URLs in order, delays
# honoured, i.e. neither internet nor benchmark mode), and siege's first run then writes no
# template. HOME moves to a temp dir so a read-only root filesystem with a /tmp tmpfs works too.
HOME=$(mktemp -d)
export HOME
mkdir "$HOME/.siege"
printf '%s\n' "$SIEGE_URLS" | awk '{ for (i = 1; i <= NF; i++) print $i }' >"$HOME/urls.txt"
cat >"$HOME/.siege/siege.conf" <<RC
verbose = true
color = off
quiet = false
internet = false
benchmark = false
logging = false
show-logfile = false
parser = false
RC

set -- -R "$HOME/.siege/siege.conf" -f "$HOME/urls.txt" \
  -c "${SIEGE_CONCURRENCY:-5}" -d "${SIEGE_DELAY:-1}" ${SIEGE_TIME:+-t "$SIEGE_TIME"} "$@"
echo "siege-entrypoint: siege $*"
# siege prints per-request lines on stdout and its summary on stderr: send both to stdout.
exec siege "$@" 2>&1
