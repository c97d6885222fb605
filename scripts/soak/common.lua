-- Shared by the soak's wrk scripts (scripts/soak.sh): each thread's index, its answers counted
-- by status (a script's `response` calls `count`), an optional pause between a connection's
-- requests (SOAK_DELAY_MS) and request budget per thread (SOAK_REQUESTS_PER_THREAD), and a
-- summary printed as one JSON line at the end (latencies in milliseconds).
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

statuses = {}
local answered = 0
local budget = tonumber(os.getenv("SOAK_REQUESTS_PER_THREAD") or "")
function count(key)
  statuses[key] = (statuses[key] or 0) + 1
  answered = answered + 1
  if budget and answered >= budget then wrk.thread:stop() end
end

local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "")
if pause then
  delay = function() return pause end
end

function done(summary, latency, requests)
  local totals = {}
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("statuses") or {}) do totals[k] = (totals[k] or 0) + n end
  end
  local parts = {}
  for k, n in pairs(totals) do table.insert(parts, string.format('"%s":%d', k, n)) end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"socket_errors":%d,"statuses":{%s}}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
