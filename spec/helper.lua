-- Loaded by busted before the specs: puts this checkout's build for the running interpreter
-- first on the module paths, so specs test what `make flavours` (or `make both`) built:
-- build/lua51, lua52, lua53, lua54 or luajit.
local flavour = rawget(_G, "jit") and "luajit" or "lua" .. _VERSION:sub(5):gsub("%.", "")
package.cpath = "./build/" .. flavour .. "/?.so;" .. package.cpath
package.path = "./lua/?.lua;./?.lua;" .. package.path
