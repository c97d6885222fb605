-- A session's life, over and over on each connection: a login (from an address of its own
-- through the trusted proxy's X-Forwarded-For), three rotated refreshes, GET /v1/me, a logout
-- (which revokes the session). SOAK_LOGIN: the password grant's form body.
local step, refreshes, k = "login", 0, 0
local refresh, access
local form = {["Content-Type"] = "application/x-www-form-urlencoded"}
request = function()
  if step == "login" then
    k = k % 250 + 1
    return wrk.format("POST", "/oauth/token",
      {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = string.format("10.1.%d.%d", id, k)},
      os.getenv("SOAK_LOGIN"))
  elseif step == "refresh" then
    return wrk.format("POST", "/oauth/token", form, "grant_type=refresh_token&refresh_token=" .. refresh)
  elseif step == "me" then
    return wrk.format("GET", "/v1/me", {["Authorization"] = "Bearer " .. access})
  end
  return wrk.format("POST", "/v1/logout", {["Authorization"] = "Bearer " .. access})
end
response = function(status, headers, body)
  count(step .. ":" .. status)
  local ok = status == 200 or status == 204
  if step == "login" or step == "refresh" then
    if status == 200 then
      refresh = body:match('"refresh_token":"([^"]+)"')
      access = body:match('"access_token":"([^"]+)"')
      refreshes = (step == "login") and 0 or refreshes + 1
      step = (refreshes >= 3) and "me" or "refresh"
    else
      step = "login"
    end
  elseif step == "me" then
    step = ok and "logout" or "login"
  else
    step = "login"
  end
end
