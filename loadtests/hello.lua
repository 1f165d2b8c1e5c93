-- wrk script for the hello-world baseline: same generator, same reporting.
wrk.method = "POST"
wrk.path = "/api/v1/applications"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"municipality_code":"131016","access_code":"ABCDEFGHJKLM","pin":"123456"}'
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests":%d,"created":%d,"duplicate":0,"other":0,"errors":%d,' ..
    '"duration_us":%d,"p50_us":%d,"p99_us":%d}\n', summary.requests, summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
