-- Request mix for the soak of the proxy benchmark (bench/bench.py), for wrk 4.
--
--   wrk ... -s bench/soak.lua URL -- MIX_FILE STOP_AFTER
--
-- MIX_FILE holds one request a line, `TOKEN<TAB>BODY` (an empty TOKEN sends
-- no Authorization header); they are sent in file order, round and round, so
-- every kind of request in the mix recurs at the same rate. The thread stops
-- after STOP_AFTER responses (the bench runs one thread), so a soak segment
-- is a number of requests, not a duration. All requests are formatted once,
-- in init(). done() prints the same machine-readable line as bench/wrk.lua.

local requests = {}
local count = 0
local index = 0
local responses = 0
local stop_after = 0

function init(args)
  for line in io.lines(args[1]) do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    if token then
      local headers = {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json, text/event-stream",
      }
      if #token > 0 then
        headers["Authorization"] = "Bearer " .. token
      end
      count = count + 1
      requests[count] = wrk.format("POST", nil, headers, body)
    end
  end
  assert(count > 0, "no request in " .. args[1])
  stop_after = assert(tonumber(args[2]), "STOP_AFTER is not a number")
end

function request()
  index = index % count + 1
  return requests[index]
end

function response(_status, _headers, _body)
  responses = responses + 1
  if responses >= stop_after then
    wrk.thread:stop()
  end
end

-- done(): the machine-readable line bench/bench.py reads, shared with the
-- other wrk script (bench/wrk_result.lua, beside this file).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_result.lua")
