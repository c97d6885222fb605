-- GET with an optional bearer token (BENCH_TOKEN).
local token = os.getenv("BENCH_TOKEN")
request = function()
  local headers = {}
  if token then headers["Authorization"] = os.getenv("BENCH_SCHEME") .. " " .. token end
  return wrk.format("GET", os.getenv("BENCH_PATH"), headers)
end
