-- GET with an optional token (BENCH_TOKEN, sent as BENCH_SCHEME: Bearer or DPoP, then with a
-- proof of BENCH_PROOFS each).
local token = os.getenv("BENCH_TOKEN")
function init(args)
  load_proofs()
end
request = function()
  local headers = {}
  if token then headers["Authorization"] = os.getenv("BENCH_SCHEME") .. " " .. token end
  return wrk.format("GET", os.getenv("BENCH_PATH"), with_proof(headers))
end
