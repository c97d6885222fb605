-- Refresh with rotation: every request presents the refresh token the previous response returned
-- on this connection (one connection per thread). BENCH_TOKENS: one starting token per thread.
-- BENCH_STYLE: "oauth" (form, refresh_token) or "simplejwt" (JSON, refresh).
local token
local style = os.getenv("BENCH_STYLE")
function init(args)
  token = split(os.getenv("BENCH_TOKENS"))[id]
  load_proofs()
end
request = function()
  if style == "oauth" then
    return wrk.format("POST", os.getenv("BENCH_PATH"), with_proof({["Content-Type"] = "application/x-www-form-urlencoded"}),
      "grant_type=refresh_token&refresh_token=" .. token)
  end
  return wrk.format("POST", os.getenv("BENCH_PATH"), {["Content-Type"] = "application/json"}, '{"refresh":"' .. token .. '"}')
end
response = function(status, headers, body)
  if status == 200 then
    local t = body:match('"refresh_token":"([^"]+)"') or body:match('"refresh":"([^"]+)"')
    if t then token = t end
  end
end
