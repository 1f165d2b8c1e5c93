-- wrk script for POST /api/v1/applications: every request its own letter (body) and Idempotency-Key.
-- env: LETTERS=path of "municipality_code<TAB>access_code<TAB>pin" lines.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  letters = {}
  for line in io.lines(os.getenv("LETTERS")) do
    local code, access, pin = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)")
    table.insert(letters, {code, access, pin})
  end
  nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
  created, duplicate, other = 0, 0, 0
  deadline = os.time() + tonumber(os.getenv("SUBMIT_SECONDS"))
end

function request()
  -- The last DRAIN seconds send only GET /healthz, so every submission has its answer before wrk stops
  -- and the database can be compared with the receipts exactly.
  if os.time() >= deadline then
    return wrk.format("GET", "/healthz")
  end
  -- Thread t takes letters t+1, t+1+n, ...: no two requests share a letter until the file wraps.
  local i = (counter * nthreads + tid) % #letters + 1
  counter = counter + 1
  local l = letters[i]
  local body = string.format(
    '{"municipality_code":"%s","access_code":"%s","pin":"%s","bank":{"bank_code":"0001","branch_code":"001",' ..
    '"account_type":1,"account_number":"%07d","holder_kana":"ヤマダ タロウ"}}', l[1], l[2], l[3], i % 10000000)
  return wrk.format("POST", "/api/v1/applications",
    {["Content-Type"] = "application/json", ["Idempotency-Key"] = string.format("load-%d-%d", tid, counter)}, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 409 then duplicate = duplicate + 1
  elseif status == 200 then return
  else other = other + 1 end
end

function done(summary, latency, requests)
  local c, d, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); d = d + t:get("duplicate"); o = o + t:get("other")
  end
  io.write(string.format('RESULT {"requests":%d,"created":%d,"duplicate":%d,"other":%d,"errors":%d,' ..
    '"duration_us":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, c, d, o, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout, summary.duration, latency:percentile(50), latency:percentile(99)))
end
