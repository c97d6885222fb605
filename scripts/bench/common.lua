-- Shared by every case of scripts/bench.sh: each thread's index (for per-connection state) and a
-- summary printed as one JSON line at the end (latencies in milliseconds).
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

-- DPoP proofs made ahead (tessera-bench dpop-proofs), one file per thread: BENCH_PROOFS.<id>.
-- Each request takes the next; none when BENCH_PROOFS is unset.
local proofs, next_proof = nil, 0
function load_proofs()
  local prefix = os.getenv("BENCH_PROOFS")
  if not prefix then return end
  proofs = {}
  for line in io.lines(prefix .. "." .. id) do table.insert(proofs, line) end
end

function with_proof(headers)
  if proofs then
    next_proof = next_proof % #proofs + 1
    headers["DPoP"] = proofs[next_proof]
  end
  return headers
end

function split(s)
  local out = {}
  for part in string.gmatch(s or "", "[^,]+") do table.insert(out, part) end
  return out
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx_or_errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, bad))
end
