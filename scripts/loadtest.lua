-- wrk script of scripts/bench-serve.sh: GET /similar-products with varied query strings.
--
--   wrk -t2 -c16 -d20s --latency -s scripts/loadtest.lua http://127.0.0.1:8001 -- REQUESTS_FILE
--
-- REQUESTS_FILE holds one query string per line (e.g. `productId=25671&userId=1`), written by
-- scripts/serve_bench_prepare.py. Each wrk thread walks the whole list in order, starting at
-- its own offset, so every connection sends a mix of users, products and fallbacks.
-- At the end one line `WRK_JSON {...}` carries the numbers bench-serve.sh tabulates
-- (latencies in microseconds; "status" counts responses with status > 399, wrk's rule).
-- No response() callback: defining one makes wrk parse every body and slows the client.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s loadtest.lua URL -- REQUESTS_FILE")
  end
  paths = {}
  for line in io.lines(file) do
    if line ~= "" then
      paths[#paths + 1] = "/similar-products?" .. line
    end
  end
  if #paths == 0 then
    error("no requests in " .. file)
  end
  -- spread the threads' starting points over the list (init runs in each thread's own Lua
  -- state, which does not see setup()'s counter, so a fixed stride)
  i = (id * 499) % #paths
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.3f, "rps": %.2f, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, e.status))
end
