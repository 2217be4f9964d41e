-- Request generator for the proxy benchmark (bench/run.sh), for wrk 4.
--
--   wrk ... -s bench/wrk.lua URL -- TOKEN_FILE BODY_FILE
--
-- Every request is the same MCP POST (the body file: a tools/call, a
-- tools/list, or a call with a large argument) with a bearer token. The token
-- cycles through the lines of TOKEN_FILE: a file of one line repeats one
-- token, a file of many distinct tokens gives every request a token the proxy
-- has not seen recently (a fresh one). All requests are formatted
-- once, in init(), so the per-request cost in wrk is the same for every variant.
-- done() prints one machine-readable line for bench/bench.py.

local requests = {}
local count = 0
local index = 0

function init(args)
  local body_file = assert(io.open(args[2], "rb"))
  local body = body_file:read("*a")
  body_file:close()
  for token in io.lines(args[1]) do
    if #token > 0 then
      count = count + 1
      requests[count] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["Accept"] = "application/json, text/event-stream",
        ["Authorization"] = "Bearer " .. token,
      }, body)
    end
  end
  assert(count > 0, "no token in " .. args[1])
  -- Start somewhere else in the list each run, so consecutive runs do not
  -- replay the same tokens in the same order.
  math.randomseed(os.time() + os.clock() * 1e6)
  index = math.random(count) - 1
end

function request()
  index = index % count + 1
  return requests[index]
end

-- done(): the machine-readable line bench/bench.py reads, shared with the
-- other wrk script (bench/wrk_result.lua, beside this file).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_result.lua")
