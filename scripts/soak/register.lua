-- A registration flood from one address (SOAK_FROM, through the trusted proxy's
-- X-Forwarded-For): a new e-mail on every request.
local n = 0
local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = os.getenv("SOAK_FROM")}
local tag = os.getenv("SOAK_TAG") or "soak"
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/users", headers,
    string.format('{"email":"%s-%d-%d@example.com","password":"correct horse battery staple"}', tag, id, n))
end
response = function(status) count(tostring(status)) end
