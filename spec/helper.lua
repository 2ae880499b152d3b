-- Loaded by busted before the specs: puts this checkout's build for the running interpreter
-- first on the module paths, so specs test what `make both` built.
local flavour = rawget(_G, "jit") and "luajit" or "lua54"
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./lua/?.lua;./?.lua;" .. package.path
