-- Round-robin over a fixed list of requests (login, client_credentials,
-- introspection, JWKS/discovery, /v1/me, and the bare limit servers).
-- Requests are formatted once in init(), so the per-request Lua cost is an
-- index increment: wrk stays far from being the bottleneck.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

local requests = {}
local cursor = 0
bad_body = 0 -- read by done() through thread:get

local expect = os.getenv("BENCH_EXPECT")
if expect == "" then expect = nil end

function init(args)
  for _, line in ipairs(common.my_lines(tid)) do
    local method, path, headers, body = common.parse_request(line)
    table.insert(requests, wrk.format(method, path, headers, body))
  end
  assert(#requests > 0, "thread " .. tid .. " got no requests from BENCH_INPUT")
  -- Bodies are only handed to Lua when response() exists; defining it here,
  -- only when a check is wanted, keeps the plain case cheap.
  if expect then
    response = function(status, headers, body)
      -- wrk counts >= 400 as errors; a redirect or a 2xx without the
      -- expected content is just as wrong here.
      if status >= 300 and status < 400 then
        bad_body = bad_body + 1
      elseif status < 300 and not string.find(body, expect, 1, true) then
        bad_body = bad_body + 1
      end
    end
  end
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function done(summary, latency, requests_)
  common.report(summary, latency, { bad_body = common.sum("bad_body") })
end
