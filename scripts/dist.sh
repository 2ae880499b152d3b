#!/usr/bin/env bash
# make dist: a local rocks server in dist/ holding the src.rock of this version and its manifest.
#   luarocks install --server=dist honeymoon-session    (see the README's Install)
# The src.rock packs the rockspec and a git archive of the working tree: tracked files as they
# are now (uncommitted changes included; untracked files are not part of it until `git add`).
# Needs git, luarocks and luarocks-admin; no network.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name=honeymoon-session-$version
rockspec=rockspec/$name-1.rockspec
[ -f "$rockspec" ] || { echo "dist: $rockspec is missing (Cargo.toml's version is $version)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# `git stash create` makes a commit of the working tree without touching it (empty when clean).
snapshot=$(git stash create)
git archive --format=tar.gz --prefix="$name/" -o "$stage/$name.tar.gz" "${snapshot:-HEAD}"
cp "$rockspec" "$stage/"
# A src.rock is a zip of the rockspec and the source archive side by side: what `luarocks pack`
# writes. It is zipped here because pack fetches source.url from inside a temp dir of its own,
# where the archive's plain file name does not resolve.
(cd "$stage" && zip -q "$name-1.src.rock" "$name-1.rockspec" "$name.tar.gz")
rm -rf dist
mkdir dist
cp "$stage/$name-1.src.rock" dist/
luarocks-admin make-manifest dist >/dev/null
echo "dist: $(cd dist && ls | tr '\n' ' ')"
