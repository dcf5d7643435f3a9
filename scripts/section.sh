#!/usr/bin/env bash
# Replace a generated section of a Markdown file: the lines from the one holding
# "<!-- NAME:begin" to the one holding "<!-- NAME:end -->" become TEXT, read from stdin, which
# carries both markers itself. A file without the section gets TEXT appended after a blank line.
#
# Usage: scripts/section.sh FILE NAME <TEXT
set -euo pipefail
file=$1 name=$2
text=$(cat)
if grep -q "<!-- $name:begin" "$file"; then
	# TEXT through the environment: awk -v would read backslashes in it as escapes.
	TEXT=$text awk -v begin="<!-- $name:begin" -v end="<!-- $name:end -->" '
		index($0, begin) {print ENVIRON["TEXT"]; skip = 1; next}
		index($0, end) {skip = 0; next}
		!skip {print}
	' "$file" >"$file.tmp"
	mv "$file.tmp" "$file"
else
	printf '\n%s\n' "$text" >>"$file"
fi
