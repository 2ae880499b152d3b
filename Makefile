# Builds honeymoon_session.so for one Lua flavour (FEATURE=lua54 or luajit), and both for tests.
# luarocks calls `make` then `make install` with LUA, LUA_INCDIR, INST_LIBDIR and INST_LUADIR
# set for the interpreter it is configured for; the flavour is picked from those.

LUA ?= lua5.4
LUA_INCDIR ?=
CARGO ?= cargo
# `make both` (tests, benchmarks, the demo) adds the test-hooks feature (_advance_clock); the
# rock's `make` leaves it out.
HOOKS ?=
FEATURE ?= $(if $(findstring jit,$(LUA) $(LUA_INCDIR)),luajit,$(if $(findstring 5.4,$(LUA) $(LUA_INCDIR)),lua54,unsupported))
LUA_FILES := $(shell find lua -name '*.lua')


.PHONY: all build both install test check example demo demo-nginx e2e load private-dir-check shared-dict-check nginx-workers-check redis-nginx-check nonblocking-check bench bench-nginx clean

all: build

build:
	@if [ "$(FEATURE)" = unsupported ]; then \
	  echo "honeymoon_session: needs Lua 5.4 or LuaJIT; luarocks is configured for $(LUA) ($(LUA_INCDIR))" >&2; exit 1; fi
	$(CARGO) build --release --locked --features $(FEATURE),module$(HOOKS) --target-dir target/$(FEATURE)
	mkdir -p build/$(FEATURE)
	# Copy then rename: a running interpreter that has the old .so mapped keeps a valid file.
	cp target/$(FEATURE)/release/libhoneymoon_session.so build/$(FEATURE)/.honeymoon_session.so.tmp
	mv build/$(FEATURE)/.honeymoon_session.so.tmp build/$(FEATURE)/honeymoon_session.so

both:
	$(MAKE) build FEATURE=lua54 HOOKS=,test-hooks
	$(MAKE) build FEATURE=luajit HOOKS=,test-hooks

install:
	mkdir -p "$(INST_LIBDIR)"
	cp build/$(FEATURE)/honeymoon_session.so "$(INST_LIBDIR)/"
	for f in $(LUA_FILES); do d="$(INST_LUADIR)/$${f#lua/}"; mkdir -p "$$(dirname "$$d")"; cp "$$f" "$$d"; done

test:
	bash scripts/test.sh

# The fast tier (about a minute): lint, cargo test, busted on Lua 5.4 and LuaJIT.
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

# Worker CPU per request under nginx (2 workers, shared-dict store): /counter vs /counter-plain.
bench-nginx: both
	bash bench/nginx_cost.sh

clean:
	rm -rf build target
