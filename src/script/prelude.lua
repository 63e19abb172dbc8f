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

-- The handler EVAL and FCALL run a script under: where the error happened, and its text.
local function handler(err)
  if type(err) == 'userdata' then err = errmsg(err) end
  local lvl, i = 2, nil
  while true do
    i = dbg.getinfo(lvl, 'Sl')
    if i == nil or i.source == '@user_script' or i.source == '@user_function' then break end
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
local gmeta = {
  __index = B,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
}
setmetatable(G, gmeta)

-- FUNCTION libraries. While a library's code runs (FUNCTION LOAD), the globals show only a
-- `redis` table with register_function, log, the log levels and the version, as Redis 7's
-- load environment; anything else is a nonexistent global. What it registers is returned.
local lower, match = string.lower, string.match
local registered = nil
local flagnames = {}
for _, f in ipairs({'no-writes', 'allow-oom', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}) do
  flagnames[f] = true
end
local function rferr(msg) error({err = 'ERR ' .. msg}) end
local function isstring(v)
  local t = type(v)
  return t == 'string' or t == 'number'
end
local function register_function(...)
  if registered == nil then rferr('redis.register_function can only be called on FUNCTION LOAD command') end
  local n = select('#', ...)
  if n < 1 or n > 2 then rferr('wrong number of arguments to redis.register_function') end
  local name, desc, cb, flags = nil, nil, nil, {}
  if n == 2 then
    local a, b = ...
    if not isstring(a) then rferr('first argument to redis.register_function must be a string') end
    if type(b) ~= 'function' then rferr('second argument to redis.register_function must be a function') end
    name, cb = tostring(a), b
  else
    local t = ...
    if type(t) ~= 'table' then
      rferr('calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).')
    end
    for key, v in pairs(t) do
      if not isstring(key) then rferr('named argument key given to redis.register_function is not a string') end
      local lk = lower(tostring(key))
      if lk == 'function_name' then
        if not isstring(v) then rferr('function_name argument given to redis.register_function must be a string') end
        name = tostring(v)
      elseif lk == 'description' then
        if not isstring(v) then rferr('description argument given to redis.register_function must be a string') end
        desc = tostring(v)
      elseif lk == 'callback' then
        if type(v) ~= 'function' then rferr('callback argument given to redis.register_function must be a function') end
        cb = v
      elseif lk == 'flags' then
        if type(v) ~= 'table' then
          rferr('flags argument to redis.register_function must be a table representing function flags')
        end
        local i = 1
        while true do
          local f = v[i]
          if f == nil then break end
          if not isstring(f) or not flagnames[lower(tostring(f))] then rferr('unknown flag given') end
          flags[#flags + 1] = lower(tostring(f))
          i = i + 1
        end
      else
        rferr('unknown argument given to redis.register_function')
      end
    end
    if name == nil then rferr('redis.register_function must get a function name argument') end
    if cb == nil then rferr('redis.register_function must get a callback argument') end
  end
  if not match(name, '^[%w_]+$') then
    rferr('Library names can only contain letters, numbers, or underscores(_) and must be at least one character long')
  end
  for _, r in ipairs(registered) do
    if r.name == name then rferr('Function already exists in the library') end
  end
  registered[#registered + 1] = {name = name, desc = desc, flags = flags, fn = cb}
end

local function strict(t)
  return setmetatable({}, {
    __index = function(_, name)
      local v = t[name]
      if v == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
      end
      return v
    end,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
end
local loadredis = strict({
  register_function = register_function,
  log = k.log,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = k.version,
  REDIS_VERSION_NUM = k.version_num,
})
local function loadglobals(_, name)
  if name == 'redis' then return loadredis end
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end

-- Runs a library's compiled code: (true, registrations) or (false, Redis's error text).
local function load_library(chunk)
  registered = {}
  gmeta.__index = loadglobals
  local ok, err = rawpcall(chunk)
  gmeta.__index = B
  local list = registered
  registered = nil
  if ok then return true, list end
  if type(err) == 'userdata' then err = errmsg(err) end
  if type(err) == 'table' then return false, tostring(rawget(err, 'err')) end
  return false, 'ERR ' .. tostring(err)
end

-- What the Rust side keeps: the globals' backing table (KEYS and ARGV go there), the runner
-- of scripts, the runner of functions (called with their keys and arguments) and the loader.
local xpcall = xpcall
local function run(f) return xpcall(f, handler) end
local function run_function(f, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
return B, run, run_function, load_library
