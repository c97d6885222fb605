-- GET /v1/me with one access token (SOAK_TOKEN).
local headers = {["Authorization"] = "Bearer " .. (os.getenv("SOAK_TOKEN") or "")}
request = function() return wrk.format("GET", "/v1/me", headers) end
response = function(status) count(tostring(status)) end
