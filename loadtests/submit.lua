-- wrk script for POST /api/v1/applications: every request its own letter (body) and Idempotency-Key.
-- env: LETTERS=path of "municipality_code<TAB>access_code<TAB>pin" lines; SUBMIT_SECONDS; WRK_THREADS;
-- LETTER_OFFSET (optional).
-- The hello-world baseline runs this same script (same bodies, headers and per-request Lua work), so
-- the two rates differ only by the server.
--
-- Submissions stop after SUBMIT_SECONDS; then only GET /healthz is sent, so every submission has its
-- answer before wrk stops and the database can be compared with the receipts exactly. wrk's own
-- latency histogram would mix in those cheap drain requests, so the script measures each submission
-- itself: the send time travels in X-Request-ID, which the server echoes, and the rate is taken over
-- the window from the first submission sent to the last answer received.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } kyufu_timespec;
  int clock_gettime(int clk_id, kyufu_timespec *tp);
]]
local ts = ffi.new("kyufu_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC: shared by wrk's threads
  return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local threads = {}
local origin = nil

function setup(thread)
  -- One origin for every thread: submissions stop SUBMIT_SECONDS after it, in all threads at once.
  origin = origin or now_us()
  thread:set("tid", #threads)
  thread:set("origin_us", origin)
  table.insert(threads, thread)
end

function init(args)
  letters = {}
  for line in io.lines(os.getenv("LETTERS")) do
    local code, access, pin = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)")
    table.insert(letters, {code, access, pin})
  end
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  offset = tonumber(os.getenv("LETTER_OFFSET") or "0")  -- to reuse a database with unused letters
  submit_us = tonumber(os.getenv("SUBMIT_SECONDS")) * 1000000
  counter = 0
  created, duplicate, other = 0, 0, 0
  latencies = {}        -- of every submission answered, in microseconds
  first_us, last_us = 0, 0
end

function request()
  local t = now_us()
  if t - origin_us >= submit_us then
    return wrk.format("GET", "/healthz")
  end
  if first_us == 0 then first_us = t end
  -- Thread t takes letters t+1, t+1+n, ...: no two requests share a letter until the file wraps.
  local i = (counter * nthreads + tid + offset) % #letters + 1
  counter = counter + 1
  local l = letters[i]
  local body = string.format(
    '{"municipality_code":"%s","access_code":"%s","pin":"%s","bank":{"bank_code":"0001","branch_code":"001",' ..
    '"account_type":1,"account_number":"%07d","holder_kana":"ヤマダ タロウ"}}', l[1], l[2], l[3], i % 10000000)
  return wrk.format("POST", "/api/v1/applications",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("load-%d-%d-%d", origin_us, tid, counter),
     ["X-Request-ID"] = string.format("sent-%d", t),
     -- Each resident from an address of their own (RFC 2544's benchmark range; a header only, no traffic
     -- goes there): uvicorn believes X-Forwarded-For from loopback, and kyufu's per-client share would
     -- otherwise count the whole bench as one client.
     ["X-Forwarded-For"] = string.format("198.18.%d.%d", math.floor(i / 256) % 256, i % 256)}, body)
end

function response(status, headers, body)
  local sent = (headers["x-request-id"] or headers["X-Request-ID"] or ""):match("^sent%-(%d+)$")
  if not sent then return end  -- a drain request
  local t = now_us()
  latencies[#latencies + 1] = t - tonumber(sent)
  if t > last_us then last_us = t end
  if status == 201 then created = created + 1
  elseif status == 409 then duplicate = duplicate + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local c, d, o, all, first, last = 0, 0, 0, {}, nil, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); d = d + t:get("duplicate"); o = o + t:get("other")
    for _, v in ipairs(t:get("latencies")) do all[#all + 1] = v end
    local f = t:get("first_us")
    if f > 0 and (first == nil or f < first) then first = f end
    if t:get("last_us") > last then last = t:get("last_us") end
  end
  table.sort(all)
  local function pct(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  io.write(string.format('RESULT {"requests":%d,"submissions":%d,"created":%d,"duplicate":%d,"other":%d,' ..
    '"errors":%d,"window_us":%d,"p50_us":%d,"p99_us":%d}\n',
    -- errors: the socket's only; an answer with another status (a 503 shed by admission control) is in other.
    summary.requests, #all, c, d, o, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, last - (first or last), pct(50), pct(99)))
end
