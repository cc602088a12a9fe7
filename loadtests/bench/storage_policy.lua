-- wrk script of `make bench` (loadtests/bench): GET or PATCH of the storage policy, each request with
-- the token of one tenant picked at random, so the server sees many principals, as in production.
--
--   wrk -t1 -c32 -d5s -s storage_policy.lua http://127.0.0.1:PORT/api/v1/settings/storage_policy \
--       -- TOKENS_FILE GET|PATCH
--
-- TOKENS_FILE holds one token a line. A PATCH sends a small JSON body and never If-Match, so no
-- answer may be a 412. Answers other than 2xx are counted (412s apart); `done` prints one line,
-- "bench-wrk {json}", that loadtests.bench.figures.parse_wrk_output reads.

local tokens = {}
local method = "GET"
local bodies = {
  '{"operational":"local"}',
  '{"sync":{"enabled":true}}',
  '{"operational":"cloud"}',
  '{"sync":{"enabled":false}}',
}
local sent = 0
local threads = {}

-- Globals, so that `done` (in the main Lua state) can read each thread's with thread:get.
non2xx = 0
conflicts = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  assert(#tokens > 0, "no tokens in " .. args[1])
  method = args[2] or "GET"
  math.randomseed(os.time())
end

function request()
  local headers = { Authorization = tokens[math.random(#tokens)] }
  if method == "PATCH" then
    sent = sent + 1
    headers["Content-Type"] = "application/json"
    return wrk.format("PATCH", nil, headers, bodies[sent % #bodies + 1])
  end
  return wrk.format("GET", nil, headers)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 412 then
      conflicts = conflicts + 1
    end
  end
end

function done(summary, latency, requests)
  local bad, stale = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    stale = stale + thread:get("conflicts")
  end
  local errors = summary.errors
  io.write(string.format(
    'bench-wrk {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"conflicts":%d,'
      .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad, stale,
    errors.connect, errors.read, errors.write, errors.timeout
  ))
end
