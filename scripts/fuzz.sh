#!/usr/bin/env bash
# make fuzz: each fuzzer (FUNC:PACKAGE) for FUZZTIME. Go 1.26's fuzzing
# coordinator can fail a run at the -fuzztime boundary with a bare
# "context deadline exceeded" and no input (golang/go#75804, fixed in Go
# 1.27); such a run is tried once more. Any other failure, and any run that
# wrote a failing input to testdata/fuzz, fails at once.
set -uo pipefail
: "${GO:=go}" "${TAGS:=}" "${FUZZTIME:=12s}"
for f in "$@"; do
	name=${f%%:*} pkg=${f#*:}
	for try in 1 2; do
		echo "fuzz $name ($FUZZTIME)"
		out=$("$GO" test -tags "$TAGS" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
		rc=$?
		printf '%s\n' "$out"
		[ $rc -eq 0 ] && break
		if [ $try -eq 1 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
			echo "fuzz $name: Go's -fuzztime boundary race (golang/go#75804), no input found: once more"
			continue
		fi
		exit 1
	done
done
