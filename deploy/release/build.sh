#!/usr/bin/env bash
# Builds the release binaries: static popdns for linux/amd64 and linux/arm64,
# the version embedded (popdns version prints it), and SHA256SUMS beside them.
#
#   deploy/release/build.sh v0.1.0 dist/
#
# Run from the repository's root. The binaries are reproducible for a given
# Go version and source: -trimpath, no VCS stamp, no C.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 VERSION OUTDIR   (e.g. $0 v0.1.0 dist/)" >&2
	exit 2
fi
version=$1
out=$2
if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
	echo "$0: VERSION must look like v1.2.3 (or v1.2.3-rc.1), got $version" >&2
	exit 2
fi
mkdir -p "$out"
names=()
for arch in amd64 arm64; do
	name=popdns-$version-linux-$arch
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$version" -o "$out/$name" ./cmd/popdns
	names+=("$name")
	echo "built $out/$name"
done
(cd "$out" && sha256sum "${names[@]}" > SHA256SUMS)
echo "wrote $out/SHA256SUMS"
