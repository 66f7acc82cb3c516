-- Shared by the oneauth wrk scripts (loaded with dofile from the script's dir).
--
-- Configuration comes from environment variables, not wrk's `-- args`,
-- because done() runs in wrk's main Lua state, where init(args) never runs:
--   BENCH_INPUT    tab-separated request file (one line per request template)
--   BENCH_THREADS  wrk's -t, so each thread takes every Nth line
--   BENCH_OUT      (refresh only) where done() writes the unused tokens
--   BENCH_EXPECT   (optional) substring every 2xx body must contain
-- done() prints one line "@@WRK_JSON@@ {...}" that ops/bench/wrk.py parses.

local M = {}

M.threads = {}
local next_id = 0

-- Runs in the main state once per thread, before the thread's init().
function M.setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(M.threads, thread)
end

function M.split(line, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(line, sep, start, true)
    if not i then
      table.insert(out, string.sub(line, start))
      return out
    end
    table.insert(out, string.sub(line, start, i - 1))
    start = i + 1
  end
end

-- The lines of BENCH_INPUT this thread owns (every nthreads-th, offset tid),
-- so threads never share a single-use token.
function M.my_lines(tid)
  local path = os.getenv("BENCH_INPUT")
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local f = assert(io.open(path, "r"), "cannot open BENCH_INPUT " .. tostring(path))
  local lines, n = {}, 0
  for line in f:lines() do
    if line ~= "" then
      if n % nthreads == tid then table.insert(lines, line) end
      n = n + 1
    end
  end
  f:close()
  return lines
end

-- One request line: method \t path \t body \t header \t header ...
function M.parse_request(line)
  local f = M.split(line, "\t")
  local headers = {}
  for i = 4, #f do
    local name, value = string.match(f[i], "^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  local body = f[3]
  if body == "" then body = nil end
  return f[1], f[2], headers, body
end

local function num(x) return string.format("%.3f", x) end

-- extra: table of name -> integer counters (already summed over threads).
function M.report(summary, latency, extra)
  local e = summary.errors
  local parts = {
    '"duration_us":' .. num(summary.duration),
    '"requests":' .. num(summary.requests),
    '"bytes":' .. num(summary.bytes),
    '"errors":{"connect":' .. e.connect .. ',"read":' .. e.read .. ',"write":' .. e.write
      .. ',"status":' .. e.status .. ',"timeout":' .. e.timeout .. '}',
    '"latency_us":{"min":' .. num(latency.min) .. ',"max":' .. num(latency.max)
      .. ',"mean":' .. num(latency.mean) .. ',"stdev":' .. num(latency.stdev)
      .. ',"p50":' .. num(latency:percentile(50)) .. ',"p75":' .. num(latency:percentile(75))
      .. ',"p90":' .. num(latency:percentile(90)) .. ',"p95":' .. num(latency:percentile(95))
      .. ',"p99":' .. num(latency:percentile(99)) .. ',"p999":' .. num(latency:percentile(99.9))
      .. '}',
  }
  local ex = {}
  for name, value in pairs(extra or {}) do
    table.insert(ex, '"' .. name .. '":' .. string.format("%d", value))
  end
  table.insert(parts, '"extra":{' .. table.concat(ex, ",") .. '}')
  io.write("@@WRK_JSON@@ {" .. table.concat(parts, ",") .. "}\n")
end

-- Sum a numeric global over all threads (wrk copies it out of each thread's state).
function M.sum(name)
  local total = 0
  for _, t in ipairs(M.threads) do
    total = total + (tonumber(t:get(name)) or 0)
  end
  return total
end

return M
