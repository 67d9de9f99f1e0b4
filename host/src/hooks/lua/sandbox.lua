-- The sandbox's prelude (sandbox.rs): runs once in each new state, before the script, with the
-- real functions it replaces and the Rust ones as arguments.
--
-- Why: the count hook sees only VM instructions, so every library function that can loop
-- without running any (Lua's pattern matcher, string.rep("", 1e15), table.move over a range of
-- nils, table.sort's comparisons, the table functions' loops over C metamethods) is either
-- replaced by Rust code that charges its work (strlib.rs), run as Lua code here (whose
-- instructions are counted), or kept only for inputs where its work is bounded by memory.
local raw_pcall, raw_xpcall, exhausted, limit_message, lib = ...

local error, type, select, rawget, getmetatable, tonumber =
  error, type, select, rawget, getmetatable, tonumber
local math_type, tointeger, ult = math.type, math.tointeger, math.ult
local string, table = string, table
local c_sub, c_format, c_find = string.sub, string.format, string.find
local c_concat, c_unpack, c_sort = table.concat, table.unpack, table.sort
-- ERR: a message to raise where the script called; RAISE: one that already says where.
local ERR, RAISE = lib.err, lib.raise

-- pcall and xpcall cannot catch their way past a limit: once the call is stopped, leaving a
-- protected call raises again. `__gc` is refused: Lua runs finalizers with hooks off (and when
-- the state is dropped, outside any call), so a looping one would escape the limits; Lua
-- marks an object for finalization only if `__gc` is in its metatable when `setmetatable` is
-- called, so checking there is enough.
do
  local real_setmetatable = setmetatable
  setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("__gc metamethods are not available to scripts", 2)
    end
    return real_setmetatable(t, mt)
  end
end
local function stop_check(...)
  if exhausted() then error(limit_message, 0) end
  return ...
end
pcall = function(...) return stop_check(raw_pcall(...)) end
xpcall = function(...) return stop_check(raw_xpcall(...)) end

-- The Rust functions answer (ERR, message) for an error a script may catch: raised here one
-- level up (this function is always tail-called), where Lua's C functions raise theirs.
local function check(first, ...)
  if first == ERR then error((...), 2) end
  if first == RAISE then error((...), 0) end
  return first, ...
end

local find, match, rep = lib.find, lib.match, lib.rep
string.find = function(...) return check(find(...)) end
string.match = function(...) return check(match(...)) end
string.rep = function(...) return check(rep(...)) end

local gmatch_start, gmatch_next = lib.gmatch_start, lib.gmatch_next
string.gmatch = function(...)
  local s, p, from = gmatch_start(...)
  if s == ERR then error(p, 2) end
  local last = nil
  local function advance(e, ...)
    if e == nil then return end
    if e == ERR then error((...), 2) end
    from, last = e, e
    return ...
  end
  return function() return advance(gmatch_next(s, p, from, last)) end
end

local gsub_start, gsub_string, gsub_step = lib.gsub_start, lib.gsub_string, lib.gsub_step
string.gsub = function(...)
  local s, p, repl, max, anchor = gsub_start(...)
  if s == ERR then error(p, 2) end
  if type(repl) == "string" then return check(gsub_string(s, p, repl, max, anchor)) end
  local by_call = type(repl) == "function"
  local out, k, n, from, last = {}, 0, 0, 0, nil
  local function add(a, e, ...)
    if a == nil then return false end
    if a == ERR then error(e, 3) end
    n = n + 1
    if a > from then k = k + 1; out[k] = c_sub(s, from + 1, a) end
    local v
    if by_call then v = repl(...) else v = repl[(...)] end
    if not v then
      v = c_sub(s, a + 1, e)
    elseif type(v) ~= "string" and math_type(v) == nil then
      error(c_format("invalid replacement value (a %s)", type(v)), 3)
    end
    k = k + 1; out[k] = v
    from, last = e, e
    return true
  end
  while n < max do
    if not add(gsub_step(s, p, from, last, anchor, not by_call)) or anchor then break end
  end
  if n == 0 then return s, 0 end
  if from < #s then k = k + 1; out[k] = c_sub(s, from + 1) end
  return c_concat(out, "", 1, k), n
end

-- One call of these can take long (a big `%q`, a long run of pack options): Rust checks the
-- budget and the deadline before each, so a call overruns by at most one of them.
local format, pack, unpack_string = lib.format, lib.pack, lib.unpack
string.format = function(...) return check(format(...)) end
string.pack = function(...) return check(pack(...)) end
string.unpack = function(...) return check(unpack_string(...)) end

-- Table functions, in Lua: their loops read and write through metamethods (which may be C
-- functions, run with no instruction counted) and over ranges a script chooses, so each step is
-- counted here. Lua's C functions still do the bulk work where it is bounded: joining checked
-- strings, unpacking a range of known size, sorting a plain array of numbers.
local function plain(t) return type(t) == "table" and getmetatable(t) == nil end

local function typename(n, ...)
  if select("#", ...) < n then return "no value" end
  local v = (select(n, ...))
  local mt = type(v) == "table" and getmetatable(v)
  if type(mt) == "table" and type(rawget(mt, "__name")) == "string" then return mt.__name end
  return type(v)
end

local function argerror(level, n, fname, msg)
  error(c_format("bad argument #%d to '%s' (%s)", n, fname, msg), level + 1)
end

local function checktable(fname, ...)
  if type((...)) ~= "table" then
    argerror(3, 1, fname, "table expected, got " .. typename(1, ...))
  end
end

local function checkinteger(fname, n, ...)
  local v = (select(n, ...))
  local i = tointeger(v)
  if i then return i end
  if type(v) ~= "table" and tonumber(v) then
    argerror(3, n, fname, "number has no integer representation")
  end
  argerror(3, n, fname, "number expected, got " .. typename(n, ...))
end

local function optinteger(fname, n, default, ...)
  if (select(n, ...)) == nil then return default end
  return checkinteger(fname, n, ...)
end

local function length(t)
  local n = tointeger(#t)
  if n == nil then error("object length is not an integer", 3) end
  return n
end

table.insert = function(...)
  checktable("insert", ...)
  local t = ...
  local e = length(t) + 1
  local args = select("#", ...)
  if args == 2 then
    t[e] = (select(2, ...))
    return
  elseif args ~= 3 then
    error("wrong number of arguments to 'insert'", 2)
  end
  local pos = checkinteger("insert", 2, ...)
  if not ult(pos - 1, e) then argerror(2, 2, "insert", "position out of bounds") end
  for i = e, pos + 1, -1 do t[i] = t[i - 1] end
  t[pos] = (select(3, ...))
end

table.remove = function(...)
  checktable("remove", ...)
  local t = ...
  local size = length(t)
  local pos = optinteger("remove", 2, size, ...)
  if pos ~= size and ult(size, pos - 1) then
    argerror(2, 2, "remove", "position out of bounds")
  end
  local v = t[pos]
  while pos < size do t[pos] = t[pos + 1]; pos = pos + 1 end
  t[pos] = nil
  return v
end

-- The elements are checked here (one counted step each); Lua's own concat then joins either
-- the plain table itself or, when reading it may run metamethods, the values read here.
table.concat = function(...)
  checktable("concat", ...)
  local t, sep = ...
  local last = length(t)
  if sep == nil then sep = "" elseif type(sep) ~= "string" and math_type(sep) == nil then
    argerror(2, 2, "concat", "string expected, got " .. typename(2, ...))
  end
  local first = optinteger("concat", 3, 1, ...)
  last = optinteger("concat", 4, last, ...)
  local direct = plain(t)
  local parts, k, i = direct and t or {}, 0, first
  while i <= last do
    local v = t[i]
    if type(v) ~= "string" and math_type(v) == nil then
      error(c_format("invalid value (%s) at index %d in table for 'concat'", type(v), i), 2)
    end
    if not direct then k = k + 1; parts[k] = v end
    if i == last then break end
    i = i + 1
  end
  if direct then return c_concat(t, sep, first, last) end
  return c_concat(parts, sep, 1, k)
end

table.unpack = function(...)
  local t = ...
  local i = optinteger("unpack", 2, 1, ...)
  local e
  if (select(3, ...)) == nil then e = length(t) else e = checkinteger("unpack", 3, ...) end
  if i > e then return end
  if e - i >= 999000 or e - i < 0 then error("too many results to unpack", 2) end
  if plain(t) then return c_unpack(t, i, e) end
  local values, k = {}, 0
  while true do
    k = k + 1; values[k] = t[i]
    if i == e then break end
    i = i + 1
  end
  return c_unpack(values, 1, k)
end

table.move = function(...)
  local a1 = ...
  local f = checkinteger("move", 2, ...)
  local e = checkinteger("move", 3, ...)
  local t = checkinteger("move", 4, ...)
  local a2 = a1
  if (select(5, ...)) ~= nil then a2 = (select(5, ...)) end
  checktable("move", a1)
  if type(a2) ~= "table" then argerror(2, 5, "move", "table expected, got " .. typename(5, ...)) end
  if e >= f then
    if not (f > 0 or e < math.maxinteger + f) then argerror(2, 3, "move", "too many elements to move") end
    local n = e - f + 1
    if not (t <= math.maxinteger - n + 1) then argerror(2, 4, "move", "destination wrap around") end
    if t > e or t <= f or (a2 ~= a1) then
      for i = 0, n - 1 do a2[t + i] = a1[f + i] end
    else
      for i = n - 1, 0, -1 do a2[t + i] = a1[f + i] end
    end
  end
  return a2
end

-- table.sort: a quicksort (median of three, insertion sort below 8 elements), every
-- comparison a Lua `<` or a call of the comparator, so every one is counted. Equal elements may
-- end in another order than Lua's C sort leaves them: neither is stable.
local INVALID = {}
local function less_than(a, b) return a < b end

local function insertion(t, lo, hi, less)
  for i = lo + 1, hi do
    local v = t[i]
    local j = i - 1
    while j >= lo and less(v, t[j]) do t[j + 1] = t[j]; j = j - 1 end
    t[j + 1] = v
  end
end

local function quicksort(t, lo, hi, less)
  while hi - lo > 8 do
    local mid = lo + (hi - lo) // 2
    if less(t[mid], t[lo]) then t[mid], t[lo] = t[lo], t[mid] end
    if less(t[hi], t[mid]) then
      t[hi], t[mid] = t[mid], t[hi]
      if less(t[mid], t[lo]) then t[mid], t[lo] = t[lo], t[mid] end
    end
    local pivot = t[mid]
    local i, j = lo - 1, hi + 1
    while true do
      repeat i = i + 1; if i > hi then error(INVALID) end until not less(t[i], pivot)
      repeat j = j - 1; if j < lo then error(INVALID) end until not less(pivot, t[j])
      if i >= j then break end
      t[i], t[j] = t[j], t[i]
    end
    if j >= hi then error(INVALID) end
    -- Recurse into the smaller part, loop on the larger: the stack stays logarithmic.
    if j - lo < hi - j then quicksort(t, lo, j, less); lo = j + 1
    else quicksort(t, j + 1, hi, less); hi = j end
  end
  insertion(t, lo, hi, less)
end

local function all_numbers(t, n)
  for i = 1, n do
    local v = rawget(t, i)
    if math_type(v) == nil or v ~= v then return false end
  end
  return true
end

table.sort = function(...)
  local t, less = ...
  checktable("sort", ...)
  if less ~= nil and type(less) ~= "function" then
    argerror(2, 2, "sort", "function expected, got " .. typename(2, ...))
  end
  local n = length(t)
  if n > 1 then
    if n >= 2147483647 then argerror(2, 1, "sort", "array too big") end
    if less == nil and plain(t) and all_numbers(t, n) then return c_sort(t) end
    local ok, err = raw_pcall(quicksort, t, 1, n, less or less_than)
    if not ok then
      if err == INVALID then error("invalid order function for sorting", 2) end
      -- A comparison this file made: say it as Lua's C sort does, without our line.
      if type(err) == "string" and c_sub(err, 1, 8) == "sandbox:" then
        local colon = c_find(err, ": ", 9, true)
        if colon then err = c_sub(err, colon + 2) end
      end
      error(err, 0)
    end
  end
end

return true
