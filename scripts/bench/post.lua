-- POST a fixed body (BENCH_BODY, BENCH_CONTENT_TYPE), with an optional Authorization header.
local body = os.getenv("BENCH_BODY")
local headers = {["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")}
if os.getenv("BENCH_AUTH") then headers["Authorization"] = os.getenv("BENCH_AUTH") end
request = function()
  return wrk.format("POST", os.getenv("BENCH_PATH"), headers, body)
end
-- BENCH_DELAY_MS: each connection waits that long after a response before its next request, so
-- the load is a number of clients at a pace, not as many requests as the server can answer.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
  delay = function() return pause end
end
