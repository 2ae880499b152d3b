# Builds honeymoon_session for one Lua flavour (lua51, lua52, lua53, lua54 or luajit), and for
# tests every flavour.
#
# luarocks runs `make` then `make install` (rockspec/*.rockspec) with its own variables: LUA, the
# interpreter it is configured for; LIB_EXTENSION, its module suffix ("so" on Linux and macOS,
# "dll" on Windows); and the rock's install dirs. The flavour is what that interpreter says it
# is: `jit` for LuaJIT, else its _VERSION (luarocks itself runs its interpreter the same way to
# tell LuaJIT from Lua 5.1). Paths are never looked at. FEATURE=lua54 (etc.) overrides.

LUA ?= lua5.4
CARGO ?= cargo
LIB_EXTENSION ?= so
# One cargo target dir for every flavour: the dependencies are built once, only mlua and this
# crate per flavour. A CARGO_TARGET_DIR in the environment wins (the install check shares one).
CARGO_TARGET_DIR ?= target/module
# `make both` / `make flavours` (tests, benchmarks, the demo) add the test-hooks feature
# (_advance_clock); the rock's `make` leaves it out.
HOOKS ?=
FLAVOURS := lua51 lua52 lua53 lua54 luajit
ifeq ($(origin FEATURE),undefined)
FEATURE := $(shell $(LUA) -e 'io.write(rawget(_G, "jit") and "luajit" or ({ ["Lua 5.1"] = "lua51", ["Lua 5.2"] = "lua52", ["Lua 5.3"] = "lua53", ["Lua 5.4"] = "lua54" })[_VERSION] or ("unsupported: " .. _VERSION))' 2>/dev/null)
endif
# What cargo names a cdylib on this platform; installed as honeymoon_session.$(LIB_EXTENSION).
UNAME_S := $(shell uname -s 2>/dev/null)
ifeq ($(UNAME_S),Darwin)
CARGO_LIB := libhoneymoon_session.dylib
else ifneq ($(filter MINGW% MSYS% CYGWIN% Windows_NT,$(UNAME_S) $(OS)),)
CARGO_LIB := honeymoon_session.dll
else
CARGO_LIB := libhoneymoon_session.so
endif
MODULE := honeymoon_session.$(LIB_EXTENSION)
# The modules the rock installs: the adapters and stores (each loads with require), nothing else.
LUA_MODULES := $(wildcard lua/honeymoon_session/adapters/*.lua lua/honeymoon_session/stores/*.lua)

.PHONY: all build both flavours flavour install dist install-check test check example demo demo-nginx e2e load private-dir-check shared-dict-check nginx-workers-check redis-nginx-check nonblocking-check bench bench-nginx clean FORCE

all: build

build:
	@case "$(FEATURE)" in lua51|lua52|lua53|lua54|luajit) ;; \
	  "") echo "honeymoon_session: cannot run the Lua interpreter '$(LUA)' to learn its version; set LUA (luarocks: variables.LUA) or FEATURE" >&2; exit 1 ;; \
	  *) echo "honeymoon_session: needs Lua 5.1, 5.2, 5.3, 5.4 or LuaJIT; '$(LUA)' is $(FEATURE)" >&2; exit 1 ;; esac
	@$(MAKE) --no-print-directory build/$(FEATURE)/$(MODULE)

# The module is rebuilt only when a source or what it is built with changed: cargo would rebuild
# it on every flavour switch, as its cdylib has one file name for all flavours in the shared
# target dir (make check builds Lua 5.4 and LuaJIT on every run). Defined only for a flavour
# this builds: another FEATURE, which the rule above refuses, need not be a name make can parse.
ifneq ($(filter $(FEATURE),$(FLAVOURS)),)
SOURCES := $(shell find src -type f) Cargo.toml Cargo.lock build.rs
# Every setting cargo reads from the environment that changes the module (profile settings such
# as overflow checks, rustc flags in any of their variables, the compiler), by name and value:
# one left out builds nothing new and keeps a module built without it. Not CARGO_TARGET_DIR,
# which says where to build, not how (the install check builds in its own).
BUILD_ENV = $(sort $(filter-out CARGO_TARGET_DIR,$(filter RUSTFLAGS RUSTC CARGO_ENCODED_RUSTFLAGS CARGO_PROFILE_% CARGO_BUILD_% CARGO_TARGET_%,$(.VARIABLES))))
BUILT_WITH = $(FEATURE),module$(HOOKS) $(foreach v,$(BUILD_ENV),$(v)=$($(v))) $(shell $(CARGO) --version 2>/dev/null)
# The same inside a shell's single quotes (a value may hold one).
BUILT_WITH_SH = $(subst ','\'',$(BUILT_WITH))

build/$(FEATURE)/$(MODULE): $(SOURCES) build/$(FEATURE)/.built-with
	$(CARGO) build --release --locked --features $(FEATURE),module$(HOOKS) --target-dir "$(CARGO_TARGET_DIR)"
	# Copy then rename: a running interpreter that has the old module mapped keeps a valid file.
	cp "$(CARGO_TARGET_DIR)/release/$(CARGO_LIB)" build/$(FEATURE)/.$(MODULE).tmp
	mv build/$(FEATURE)/.$(MODULE).tmp build/$(FEATURE)/$(MODULE)

# Rewritten only when it would change, so that its date tells when the build settings did.
build/$(FEATURE)/.built-with: FORCE
	@mkdir -p $(@D)
	@echo '$(BUILT_WITH_SH)' | cmp -s - $@ || echo '$(BUILT_WITH_SH)' >$@
endif

FORCE:

# The flavour `make build` would pick for LUA (the install check tests the detection with it).
flavour:
	@echo "$(FEATURE)"

# Lua 5.4 and LuaJIT: what the examples, demo, interop, e2e, load and nginx checks use.
both:
	$(MAKE) build FEATURE=lua54 HOOKS=,test-hooks
	$(MAKE) build FEATURE=luajit HOOKS=,test-hooks

# Every flavour, for busted on every interpreter.
flavours:
	for f in $(FLAVOURS); do $(MAKE) build FEATURE=$$f HOOKS=,test-hooks || exit 1; done

# INST_PREFIX is the rock's own dir: the LuaLS stubs (every types/*.lua) go to its library/ (see
# the README), and docs/*.md to doc/docs/, where the README.md that luarocks copies into doc/
# afterwards links to them.
install:
	mkdir -p "$(INST_LIBDIR)" "$(INST_LUADIR)/honeymoon_session/adapters" "$(INST_LUADIR)/honeymoon_session/stores"
	cp build/$(FEATURE)/$(MODULE) "$(INST_LIBDIR)/"
	for f in $(LUA_MODULES); do cp "$$f" "$(INST_LUADIR)/$${f#lua/}"; done
	if [ -n "$(INST_PREFIX)" ]; then mkdir -p "$(INST_PREFIX)/library" && cp types/*.lua "$(INST_PREFIX)/library/"; fi
	if [ -n "$(INST_PREFIX)" ]; then mkdir -p "$(INST_PREFIX)/doc/docs" && cp docs/*.md "$(INST_PREFIX)/doc/docs/"; fi

# A local rocks server in dist/: the src.rock of the working tree's tracked files (uncommitted
# changes included, untracked files not) and its manifest. See the README's Install.
dist:
	bash scripts/dist.sh

# luarocks install --server=dist on every interpreter, from throwaway trees (make dist first).
install-check: dist
	bash scripts/install_check.sh

test:
	bash scripts/test.sh

# The fast tier (under a minute): lint, cargo test, busted on Lua 5.4 and LuaJIT. make test also
# covers Lua 5.1, 5.2 and 5.3.
check:
	bash scripts/test.sh --fast

example: both
	lua5.4 examples/walk.lua

# The spec's Complete Example as a web app on http://127.0.0.1:3000 (lua-http, Lua 5.4).
demo: both
	lua5.4 examples/demo/app.lua

# The same app under nginx with the Lua module (LuaJIT) on http://127.0.0.1:3001.
demo-nginx: both
	bash examples/demo/nginx.sh

e2e:
	bash scripts/e2e.sh

load:
	bash scripts/load.sh

# The nginx demo from a clone of HEAD inside a fresh mode-700 dir (issue 11), with the built .so.
private-dir-check: both
	bash scripts/private_dir_check.sh

# The SharedDictStore inside nginx with two workers: contract, concurrent merges across workers.
shared-dict-check: both
	bash scripts/shared_dict_check.sh

# Sessions across nginx workers: the demo with 2 workers, 1,000 logged-in requests over both,
# concurrent writes of different keys from both, escaped errors logged with their message.
nginx-workers-check: both
	bash scripts/nginx_workers_check.sh

# The Lua RedisStore's ngx backend (cosockets) in nginx with 2 workers, against a throwaway redis-server.
redis-nginx-check: both
	bash scripts/redis_nginx_check.sh

# Stores never block an event loop: Redis behind a 2 ms proxy, one nginx worker, one lua-http.
nonblocking-check: both
	bash scripts/nonblocking_check.sh

bench: both
	bash bench/run.sh

# Worker CPU per request under nginx (2 workers, shared-dict store): /counter vs /counter-plain,
# under wrk, then the same routes as subrequests inside one worker (steadier, for comparisons).
bench-nginx: both
	bash bench/nginx_cost.sh
	bash bench/nginx_subrequests.sh

clean:
	rm -rf build target dist
