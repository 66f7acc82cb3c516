-- Refresh-token grant where every request carries a token never used before.
--
-- Tokens rotate: each 200 answer holds the successor of the token just spent.
-- Each thread keeps a FIFO of unused tokens: request() takes the oldest,
-- response() appends the successor. wrk does not say which request a response
-- answers, so the successor's app and client come from the new access token's
-- claims (app_id, client_id). With one token per active app the FIFO visits
-- every app in turn, i.e. traffic is spread over all of them.
-- A failed answer loses its chain (counted in lost_chain); done() writes the
-- survivors to BENCH_OUT so the harness can reuse them in the next run.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

queue = {}
head, tail = 1, 1
lost_chain = 0
bad_body = 0
starved = 0

local function push(app, client, token)
  queue[tail] = app .. "\t" .. client .. "\t" .. token
  tail = tail + 1
end

function init(args)
  for _, line in ipairs(common.my_lines(tid)) do
    local f = common.split(line, "\t")
    push(f[1], f[2], f[3])
  end
  assert(tail > head, "thread " .. tid .. " got no refresh tokens")
end

local HEADERS = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  if head == tail then
    -- Every chain of this thread failed; send a request that will fail
    -- visibly (counted as an error) rather than stall the connection.
    starved = starved + 1
    return wrk.format("POST", "/apps/starved/oauth/token", HEADERS,
      "grant_type=refresh_token&refresh_token=none&client_id=none")
  end
  local f = common.split(queue[head], "\t")
  queue[head] = nil
  head = head + 1
  return wrk.format("POST", "/apps/" .. f[1] .. "/oauth/token", HEADERS,
    "grant_type=refresh_token&refresh_token=" .. f[3] .. "&client_id=" .. f[2])
end

-- base64url without padding -> bytes (LuaJIT's bit library; no C modules).
local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for i = 1, #alphabet do B64[string.byte(alphabet, i)] = i - 1 end
end

local function b64url_decode(s)
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64[string.byte(s, i)]
    if v == nil then return nil end
    acc = bit.bor(bit.lshift(acc, 6), v)
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      table.insert(out, string.char(bit.band(bit.rshift(acc, bits), 0xFF)))
    end
    acc = bit.band(acc, 0xFFFF) -- keep only the bits not yet emitted
  end
  return table.concat(out)
end

local function claim(json, name)
  return string.match(json, '"' .. name .. '"%s*:%s*"([^"]+)"')
end

function response(status, headers, body)
  if status ~= 200 then
    -- wrk itself counts >= 400 as errors; anything else unexpected is ours.
    if status < 400 then bad_body = bad_body + 1 end
    lost_chain = lost_chain + 1
    return
  end
  local refresh = claim(body, "refresh_token")
  local access = claim(body, "access_token")
  local payload = access and string.match(access, "^[^.]+%.([^.]+)%.")
  local claims = payload and b64url_decode(payload)
  local app = claims and claim(claims, "app_id")
  local client = claims and claim(claims, "client_id")
  if not (refresh and app and client) then
    bad_body = bad_body + 1
    lost_chain = lost_chain + 1
    return
  end
  push(app, client, refresh)
end

function done(summary, latency, requests_)
  local out = os.getenv("BENCH_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "w"))
    for _, t in ipairs(common.threads) do
      local q, h, tl = t:get("queue"), t:get("head"), t:get("tail")
      for i = h, tl - 1 do
        if q[i] then f:write(q[i], "\n") end
      end
    end
    f:close()
  end
  common.report(summary, latency, {
    bad_body = common.sum("bad_body"),
    lost_chain = common.sum("lost_chain"),
    starved = common.sum("starved"),
  })
end
