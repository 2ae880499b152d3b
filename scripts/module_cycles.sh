#!/usr/bin/env bash
# Import circles between the crate's top-level modules (src/<name>.rs, src/<name>/): every
# `crate::<module>` path a file of one names another (a `use` or a path in code; comments are
# skipped), and whether a module reaches itself through them. The project's rule is one
# direction of flow: prints the edges inside each circle and exits 1 when there is one.
# `-v` prints every edge. Run by scripts/test.sh's lint step.
set -euo pipefail
cd "$(dirname "$0")/.."
verbose=false; [ "${1:-}" = "-v" ] && verbose=true
# A grouped path (`use crate::{a, b}`) would hide its modules from the scan below.
if grep -rn 'crate::{' src; then
  echo "module_cycles: write one crate::<module> path per use (a grouped crate::{...} is not scanned)" >&2
  exit 1
fi
if ! find src -name '*.rs' ! -path src/lib.rs | sort | while read -r f; do
  top=${f#src/}; top=${top%%/*}; top=${top%.rs}
  # Drop char and string literals (a "redis://" is no comment), then line comments (doc
  # comments name other modules freely), then list the paths.
  sed -E "s/'(\\\\.|[^'\\\\])'//g; s/\"(\\\\.|[^\"\\\\])*\"//g; s#//.*##" "$f" | grep -no 'crate::[a-z_0-9]*' | sed "s#^\([0-9]*\):crate::#$top $f:\1 #" || true
done | awk -v verbose="$verbose" '
  $1 != $3 { from = $1; to = $3; if (!((from, to) in at)) at[from, to] = $2; else if (length(at[from, to]) < 60) at[from, to] = at[from, to] ", " $2
             edge[from, to] = 1; node[from] = 1; node[to] = 1 }
  END {
    for (a in node) for (b in node) reach[a, b] = ((a, b) in edge)
    for (k in node) for (a in node) if (reach[a, k]) for (b in node) if (reach[k, b]) reach[a, b] = 1
    bad = 0
    for (key in edge) {
      split(key, p, SUBSEP)
      circle = reach[p[2], p[1]]
      if (circle || verbose == "true") print (circle ? "circle: " : "") p[1] " -> " p[2] " (" at[key] ")"
      if (circle) bad = 1
    }
    exit bad
  }' | sort; then
  echo "module_cycles: import circles between modules of src/, move the shared item to the module that owns it or to a leaf module" >&2
  exit 1
fi
