-- Builds the sandbox a script runs in, as Redis 7 does: the `redis` table, the libraries,
-- Redis's pcall, the error handler, and protected globals. Runs once per Lua state, with the
-- Rust side's raw functions in the global `__kura` (removed here).
local k = __kura
__kura = nil
local dbg = debug
local rawset, pairs, ipairs = rawset, pairs, ipairs
local rawpcall, error, type, select, unpack, tostring, setmetatable, rawget =
    pcall, error, type, select, unpack, tostring, setmetatable, rawget

local redis = {}
redis.call = k.call
redis.pcall = k.pcall
redis.sha1hex = k.sha1hex
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  if e:sub(1, 1) ~= '-' then e = '-' .. e end
  return k.error_table(e)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return {err = 'ERR wrong number or type of arguments'}
  end
  return {ok = s}
end
redis.log = k.log
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.setresp = k.setresp
redis.set_repl = k.set_repl
redis.replicate_commands = function() return true end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.breakpoint = function() return false end
redis.debug = function() end
redis.acl_check_cmd = function() return true end
redis.REDIS_VERSION = k.version
redis.REDIS_VERSION_NUM = k.version_num

math.random = k.random
math.randomseed = k.randomseed

local cjson = {encode = k.cjson_encode, decode = k.cjson_decode, null = k.null}
local cmsgpack = {pack = k.msgpack_pack, unpack = k.msgpack_unpack}
local bit = {}
for _, name in ipairs({'tobit', 'bnot', 'band', 'bor', 'bxor', 'lshift', 'rshift', 'arshift', 'rol',
                       'ror', 'bswap', 'tohex'}) do
  bit[name] = k['bit_' .. name]
end
local struct = {pack = k.struct_pack, unpack = k.struct_unpack, size = k.struct_size}

-- Redis 7's pcall: an error table gives its `err` string.
local errmsg = k.errmsg
local function pfix(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'userdata' then e = errmsg(e) end
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then return false, e.err end
  return false, e
end
pcall = function(f, ...) return pfix(rawpcall(f, ...)) end

-- The handler EVAL runs a script under: where the error happened, and its text.
local function handler(err)
  if type(err) == 'userdata' then err = errmsg(err) end
  local lvl, i = 2, nil
  while true do
    i = dbg.getinfo(lvl, 'Sl')
    if i == nil or i.source == '@user_script' then break end
    lvl = lvl + 1
  end
  if type(err) ~= 'table' then err = {err = 'ERR ' .. tostring(err)} end
  if i then
    err.source = i.source
    err.line = i.currentline
  end
  return err
end

-- Read-only library tables.
local function readonly(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
end

local G = _G
local B = {}
for name, v in pairs(G) do B[name] = v end
for name in pairs(B) do rawset(G, name, nil) end
B.debug, B.print, B.dofile, B.loadfile, B.require, B.module, B.package, B.os, B.io = nil
B.redis = readonly(redis)
B.cjson = readonly(cjson)
B.cmsgpack = readonly(cmsgpack)
B.bit = readonly(bit)
B.struct = readonly(struct)
B.string = readonly(B.string)
B.math = readonly(B.math)
B.table = readonly(B.table)
B.coroutine = readonly(B.coroutine)
B._G = G
setmetatable(B, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __metatable = false,
})
setmetatable(G, {
  __index = B,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

-- What the Rust side keeps: the globals' backing table (KEYS and ARGV go there) and the runner.
local xpcall = xpcall
local function run(f) return xpcall(f, handler) end
return B, run
