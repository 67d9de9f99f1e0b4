-- size-limit.lua: refuse files above a size, before a byte of them is sent or accepted.
--
-- Settings:
--   max_bytes   the largest file allowed, in bytes (default 104857600, 100 MiB)

local DEFAULT_MAX = 100 * 1024 * 1024

-- Read the setting once, when the script loads: a bad value stops the host at start-up with
-- this line in the error, rather than at the first transfer.
local max = DEFAULT_MAX
local setting = p2p.settings.max_bytes
if setting ~= nil then
  max = math.tointeger(tonumber(setting))
  if max == nil or max < 0 then
    error(string.format("setting max_bytes must be a whole number of bytes, not %q", setting))
  end
end

local function human(n)
  if n >= 1024 * 1024 then
    return string.format("%.1f MiB", n / (1024 * 1024))
  elseif n >= 1024 then
    return string.format("%.1f KiB", n / 1024)
  end
  return string.format("%d bytes", n)
end

p2p.on("pre_send", function(file)
  if file.size > max then
    return p2p.reject(string.format(
      "%s is %s (%d bytes), over the %s limit (size-limit.lua, setting max_bytes = %d)",
      file.path, human(file.size), file.size, human(max), max))
  end
  return p2p.continue()
end)
