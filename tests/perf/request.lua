-- wrk script for tests/perf/bench_rest.py: one request shape from the environment, and a JSON
-- summary line at the end that the script parses (exact percentiles, error counts).
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["apikey"] = os.getenv("BENCH_APIKEY")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local prefer = os.getenv("BENCH_PREFER")
if prefer ~= nil and prefer ~= "" then
  wrk.headers["Prefer"] = prefer
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
