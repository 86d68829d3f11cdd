-- bench/post.lua - wrk script: POST a JSON vote per request to tadak-producer serve.
--
--   wrk -t2 -c64 -d30s -s bench/post.lua http://127.0.0.1:8000/votes
--
-- Each request votes as a different user (a per-thread counter, offset by the
-- thread id so threads do not overlap), for one of five candidates; set
-- DUP=N in the environment to send every vote N times in a row (click bursts).
-- With TOKENS=FILE (one JWT a line) each request carries the next token as
-- Authorization: Bearer and leaves user_id to it (serve with identity on).
-- Non-2xx answers are counted and reported at the end.

local threads = {}
local counter = 1

function setup(thread)
   thread:set("id", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

function init(args)
   n = 0
   errors = 0
   dup = tonumber(os.getenv("DUP") or "1")
   base = id * 100000000
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   tokens = {}
   local file = os.getenv("TOKENS")
   if file then
      for line in io.lines(file) do
         table.insert(tokens, line)
      end
   end
end

function request()
   local user = base + math.floor(n / dup) + 1
   local candidate = user % 5 + 1
   n = n + 1
   if #tokens > 0 then
      local headers = {["Content-Type"] = "application/json",
                       ["Authorization"] = "Bearer " .. tokens[(user + id) % #tokens + 1]}
      return wrk.format(nil, nil, headers, string.format('{"candidate_id":%d}', candidate))
   end
   local body = string.format('{"user_id":%d,"candidate_id":%d}', user, candidate)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 202 then
      errors = errors + 1
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + t:get("errors")
   end
   io.write(string.format("non-202 answers: %d\n", total))
end
