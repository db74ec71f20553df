-- Replays pre-signed requests (gateway/bench/_requests.py writes them) and logs every response.
--
--   wrk -t1 -c64 -d10s --latency -s replay.lua http://127.0.0.1:PORT -- POOL_PREFIX LOG_PREFIX
--
-- Thread n reads POOL_PREFIX<n>.bin (records of "<length>\n<raw request>") and sends each
-- request once, in order; it writes "<status> <X-Request-Id>" per response to LOG_PREFIX<n>.log.
-- A pool that runs out is a bench error, never a replay: the thread logs "exhausted" once and
-- then sends GET /healthz (unsigned, unlogged as an operation) until wrk stops.
-- `done` prints one line, "BENCH-WRK {json}", with wrk's counts and latency percentiles (us).

local thread_count = 0

function setup(thread)
   thread:set("thread_index", thread_count)
   thread_count = thread_count + 1
end

local pool = {}
local next_request = 1
local log = nil
local exhausted = false
local fallback = nil

function init(args)
   local pool_prefix, log_prefix = args[1], args[2]
   local file = assert(io.open(pool_prefix .. thread_index .. ".bin", "rb"))
   local data = file:read("*a")
   file:close()
   local position = 1
   local size = #data
   while position <= size do
      local newline = string.find(data, "\n", position, true)
      local length = tonumber(string.sub(data, position, newline - 1))
      pool[#pool + 1] = string.sub(data, newline + 1, newline + length)
      position = newline + 1 + length
   end
   log = assert(io.open(log_prefix .. thread_index .. ".log", "w"))
   log:setvbuf("full")
   fallback = wrk.format("GET", "/healthz")
end

function request()
   local raw = pool[next_request]
   if raw == nil then
      if not exhausted then
         exhausted = true
         log:write("exhausted\n")
      end
      return fallback
   end
   pool[next_request] = nil -- sent once; let the collector have it
   next_request = next_request + 1
   return raw
end

function response(status, headers, body)
   local request_id = headers["x-request-id"] or headers["X-Request-Id"] or "-"
   if exhausted and request_id == "-" then
      return
   end
   log:write(status, " ", request_id, "\n")
   log:flush()
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'BENCH-WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, ' ..
      '"p99_us": %d, "max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
      latency:percentile(99), latency.max, errors.connect, errors.read, errors.write,
      errors.timeout))
end
