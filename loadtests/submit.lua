-- wrk script for POST /api/v1/applications: every request its own letter (body) and Idempotency-Key.
-- env: LETTERS=path of "municipality_code<TAB>access_code<TAB>pin[<TAB>holder_kana]" lines (without a
-- holder, every account is ヤマダ タロウ's); SUBMIT_SECONDS; WRK_THREADS; LETTER_OFFSET (optional).
-- Optional, for loadtests/pipeline.py: SUBMIT_LIMIT=n sends letters 1..n once each (then only /healthz);
-- SUBMIT_RATE=r paces submissions at r/s over all threads (wrk's delay() hook; a connection whose slot
-- has passed sends at once, so a server slower than r gets what it can take); DONE_DIR=dir: a thread
-- writes dir/thread-<n> once it has sent its share and every submission of its has an answer, so the
-- caller can stop wrk (SIGINT: wrk still runs done()) instead of waiting out -d; SUBMIT_RETRY_SHED_MS=ms:
-- a submission shed with 503 is sent again (same letter, same Idempotency-Key, as a client honouring
-- Retry-After would, but after ms) until it is answered otherwise.
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
    local code, access, pin, holder = line:match("^([^\t]+)\t([^\t]+)\t([^\t\r]+)\t?([^\t\r]*)")
    table.insert(letters, {code, access, pin, holder ~= "" and holder or "ヤマダ タロウ"})
  end
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  offset = tonumber(os.getenv("LETTER_OFFSET") or "0")  -- to reuse a database with unused letters
  submit_us = tonumber(os.getenv("SUBMIT_SECONDS")) * 1000000
  limit = tonumber(os.getenv("SUBMIT_LIMIT") or "0")
  done_dir = os.getenv("DONE_DIR")
  retry_us = tonumber(os.getenv("SUBMIT_RETRY_SHED_MS") or "-1") * 1000
  retries, retried = {}, 0   -- shed submissions waiting to be sent again: {letter, key, due}
  counter = 0
  submitted, answered, finished = 0, 0, false
  -- wrk 4 calls request() once in thread 0 before any connection, only to check what it returns: that
  -- call must not use up a letter (with SUBMIT_LIMIT, one letter would never be sent).
  dry_run_pending = (tid == 0)
  created, duplicate, other = 0, 0, 0
  statuses = {}         -- answers by HTTP status, submissions only
  latencies = {}        -- of every submission answered, in microseconds
  first_us, last_us = 0, 0
end

-- True once this thread has no new letter to submit (time is up, or its share of SUBMIT_LIMIT is sent).
local function sending_over(t)
  return t - origin_us >= submit_us or (limit > 0 and counter * nthreads + tid >= limit)
end

local function mark_finished(t)
  if finished or not done_dir or not sending_over(t) or answered < submitted or #retries > 0 then return end
  finished = true
  local fh = io.open(string.format("%s/thread-%d", done_dir, tid), "w")
  if fh then fh:write(string.format("%d %d\n", submitted, answered)); fh:close() end
end

local rate = tonumber(os.getenv("SUBMIT_RATE") or "0")
if rate > 0 then
  -- Slot k of thread t is due at origin + (k + t / threads) * threads / rate: the threads interleave.
  next_slot = 0
  function delay()
    local t = now_us()
    if sending_over(t) then return #retries > 0 and 50 or 500 end  -- drain requests: a trickle, not a flood
    local interval_us = nthreads * 1000000 / rate
    local due = origin_us + (next_slot + tid / nthreads) * interval_us
    next_slot = next_slot + 1
    return math.max(0, math.floor((due - t) / 1000))
  end
end

function request()
  if dry_run_pending then
    dry_run_pending = false
    return wrk.format("GET", "/healthz")
  end
  local t = now_us()
  local i, key
  if #retries > 0 and retries[1][3] <= t then
    local r = table.remove(retries, 1)
    i, key, retried = r[1], r[2], retried + 1
  elseif sending_over(t) then
    mark_finished(t)
    return wrk.format("GET", "/healthz")
  else
    if first_us == 0 then first_us = t end
    -- Thread t takes letters t+1, t+1+n, ...: no two requests share a letter until the file wraps.
    i = (counter * nthreads + tid + offset) % #letters + 1
    counter = counter + 1
    key = counter
  end
  submitted = submitted + 1
  local l = letters[i]
  local body = string.format(
    '{"municipality_code":"%s","access_code":"%s","pin":"%s","bank":{"bank_code":"0001","branch_code":"001",' ..
    '"account_type":1,"account_number":"%07d","holder_kana":"%s"}}', l[1], l[2], l[3], i % 10000000, l[4])
  return wrk.format("POST", "/api/v1/applications",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("load-%d-%d-%d", origin_us, tid, key),
     -- The server echoes it: when it was sent, and which letter and key (to send a shed one again).
     ["X-Request-ID"] = string.format("sent-%d-%d-%d", t, i, key),
     -- Each resident from an address of their own (RFC 2544's benchmark range; a header only, no traffic
     -- goes there): uvicorn believes X-Forwarded-For from loopback, and kyufu's per-client share would
     -- otherwise count the whole bench as one client.
     ["X-Forwarded-For"] = string.format("198.18.%d.%d", math.floor(i / 256) % 256, i % 256)}, body)
end

function response(status, headers, body)
  local sent, i, key = (headers["x-request-id"] or headers["X-Request-ID"] or ""):match("^sent%-(%d+)%-(%d+)%-(%d+)$")
  if not sent then return end  -- a drain request
  local t = now_us()
  latencies[#latencies + 1] = t - tonumber(sent)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if t > last_us then last_us = t end
  if status == 201 then created = created + 1
  elseif status == 409 then duplicate = duplicate + 1
  else other = other + 1 end
  if status == 503 and retry_us >= 0 then
    retries[#retries + 1] = {tonumber(i), tonumber(key), t + retry_us}
  end
  mark_finished(t)
end

function done(summary, latency, requests)
  local c, d, o, all, first, last, by_status, again = 0, 0, 0, {}, nil, 0, {}, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); d = d + t:get("duplicate"); o = o + t:get("other"); again = again + t:get("retried")
    for code, n in pairs(t:get("statuses")) do by_status[code] = (by_status[code] or 0) + n end
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
  local codes = {}
  for code, n in pairs(by_status) do codes[#codes + 1] = string.format('"%d":%d', code, n) end
  io.write(string.format('RESULT {"requests":%d,"submissions":%d,"created":%d,"duplicate":%d,"other":%d,' ..
    '"errors":%d,"window_us":%d,"p50_us":%d,"p99_us":%d,"by_status":{%s},"retried":%d}\n',
    -- errors: the socket's only; an answer with another status (a 503 shed by admission control) is in other.
    summary.requests, #all, c, d, o, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, last - (first or last), pct(50), pct(99), table.concat(codes, ","), again))
end
