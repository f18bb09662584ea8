#!/usr/bin/env bash
# compare.sh OLD NEW [ROUNDS] [ONLY]: builds the bench command at two
# commits and runs them in alternating rounds (OLD, NEW, OLD, NEW, ...),
# each round -count 5 -benchtime 200ms over the rows ONLY matches, then
# prints, for every row, the median ns/op of each round and, over the
# rounds, the median and the lower quartile of those medians for OLD and
# NEW, and NEW ÷ OLD. Alternating spreads the machine's own noise over
# both; the lower quartile is the least disturbed figure. PostgreSQL rows
# need a server: run it as `pg_virtualenv -t -- bench/compare.sh ...`.
# BASE="NEWROW=OLDROW ..." compares a row that only NEW has with OLD's
# row OLDROW (which ONLY must match too): what a new feature costs over
# the old figure, e.g.
#   BASE='set-history/opstate=set-normal/opstate' bench/compare.sh main HEAD 8 \
#     '^(set-normal|set-history)/opstate$'
set -euo pipefail
old=${1:?usage: compare.sh OLD NEW [ROUNDS] [ONLY]}
new=${2:?usage: compare.sh OLD NEW [ROUNDS] [ONLY]}
rounds=${3:-8}
only=${4:-'^((get-hit|get-hit-parallel|get-absent|set-normal|set-concurrent-normal)/opstate|(get-hit|get-hit-parallel)/opstate-pg|(set-pg|set-concurrent-pg)/opstate-pg)$'}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/old" >/dev/null 2>&1 || true;
	git -C "$repo" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
for v in old new; do
	git -C "$repo" worktree add -q --detach "$work/$v" "${!v}"
	(cd "$work/$v/bench" && go build -o "$work/bench-$v" .)
done
echo "old = $(git -C "$repo" rev-parse --short "$old"), new = $(git -C "$repo" rev-parse --short "$new"), $rounds rounds"
for r in $(seq 1 "$rounds"); do
	for v in old new; do
		"$work/bench-$v" -only "$only" -count 5 -benchtime 200ms 2>&1 |
			awk -v r="$r" -v v="$v" '$2 ~ /^[0-9]+\/[0-9]+$/ && $4 == "ns/op" { print r, v, $1, $3, $5 }'
	done
done >"$work/runs"
for pair in ${BASE:-}; do
	awk -v n="${pair%%=*}" -v o="${pair#*=}" '$2 == "old" && $3 == o { $3 = n; print }' "$work/runs"
done >"$work/base"
cat "$work/base" >>"$work/runs"
# Per row, version and round: the median of the round's runs; then per row
# and version, the median and the lower quartile of the round medians.
sort -k3,3 -k2,2 -k1,1n -k4,4g "$work/runs" | awk '
function flush() {
	if (n) print row, ver, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), al
	n = 0
}
$3 != row || $2 != ver || $1 != rnd { flush(); row = $3; ver = $2; rnd = $1 }
{ v[++n] = $4; al = $5 }
END { flush() }' | sort -k1,1 -k2,2 -k3,3g | awk '
function flush() {
	if (!n) return
	md[ver] = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	q1[ver] = v[int((n + 3) / 4)]; al[ver] = a; n = 0
	if (ver != "old") return # new sorts before old
	printf "%-32s %9.1f %9.1f %6.3f %9.1f %9.1f %6.3f %s/%s\n", row, md["old"], md["new"], md["new"] / md["old"],
		q1["old"], q1["new"], q1["new"] / q1["old"], al["old"], al["new"]
}
BEGIN { printf "%-32s %9s %9s %6s %9s %9s %6s %s\n", "row (ns/op)", "old med", "new med", "ratio", "old q1", "new q1", "ratio", "allocs" }
$1 != row || $2 != ver { flush(); row = $1; ver = $2 }
{ v[++n] = $3; a = $4 }
END { flush() }'
