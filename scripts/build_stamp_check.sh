#!/usr/bin/env bash
# The Makefile rebuilds a module only when its sources or its build/<flavour>/.built-with stamp
# changed. A build setting cargo reads from the environment that the stamp leaves out builds
# nothing new: the module built without it stays, and whatever it was set for (overflow checks,
# debug assertions, another compiler) silently does not happen. For each such setting, the
# stamp's text (BUILT_WITH, printed without building or writing anything) must change when it
# is set. Run by scripts/test.sh's lint step.
set -euo pipefail
cd "$(dirname "$0")/.."
built_with() { # VAR=value..., in make's environment
  env "$@" make -s --no-print-directory FEATURE=lua54 \
    --eval 'print-built-with: ; @echo '"'"'$(BUILT_WITH_SH)'"'"'' print-built-with
}
plain=$(built_with)
[ -n "$plain" ] || { echo "build_stamp_check: the Makefile printed no BUILT_WITH" >&2; exit 1; }
bad=0
for setting in RUSTFLAGS=-Cdebug-assertions CARGO_ENCODED_RUSTFLAGS=-Cdebug-assertions \
  CARGO_BUILD_RUSTFLAGS=-Cdebug-assertions CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
  CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS=-Cdebug-assertions \
  RUSTC=/usr/bin/rustc "RUSTFLAGS=--cfg=feature=\"it's\""; do
  # By name and value, verbatim: a quote in a value must not break the stamp's echo.
  case "$(built_with "$setting" 2>&1)" in
    *" $setting "*) ;;
    *) echo "not ok: $setting changes the module but is not in its build stamp (a stale module would be kept)"
       bad=1 ;;
  esac
done
# The target dir is where the module is built, not how: another one must not force a rebuild
# (the install check builds in its own).
if [ "$(built_with CARGO_TARGET_DIR=/tmp/elsewhere)" != "$plain" ]; then
  echo "not ok: CARGO_TARGET_DIR changes the build stamp"
  bad=1
fi
exit $bad
