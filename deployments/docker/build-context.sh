#!/usr/bin/env bash
# Makes .build/context/: the files git would ship (tracked, plus untracked ones not ignored, so
# uncommitted work builds too) and vendor/ from `go mod vendor`, so `docker build` of
# deployments/docker/Dockerfile needs no network. Prints the context size.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CTX="$ROOT/.build/context"
cd "$ROOT"

rm -rf "$CTX"
mkdir -p "$CTX"
# Deleted-but-still-tracked files are skipped, and so are the build and tool folders even before
# .gitignore lists them (the context must not copy itself or 100 MB of tool binaries).
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      case $f in .build/* | .tools/* | bin/*) continue ;; esac
      [ -f "$f" ] && printf '%s\0' "$f"
    done \
  | tar --null -T - -cf - | tar -C "$CTX" -xf -
# An in-tree vendor/ would already be copied; otherwise vendor here (the proxy is reachable).
if [ ! -d "$CTX/vendor" ] && grep -q '^require' go.mod; then
  go mod vendor -o "$CTX/vendor"
fi
echo "build context $CTX: $(du -sh "$CTX" | cut -f1), $(find "$CTX" -type f | wc -l) files" >&2
