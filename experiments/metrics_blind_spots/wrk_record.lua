-- metrics-blind-spots: wrk as a closed-loop client that records every request.
-- Run with as many threads as connections (-t C -c C): each thread then drives exactly one
-- connection, so its request() and response() calls alternate and the time between them
-- is that request's latency as a closed-loop tool measures it (from the actual send, not
-- from when it should have been sent). At the end, `done` writes every thread's records
-- (send time on CLOCK_REALTIME, latency, status) and wrk's own summary as JSON to the file
-- named by MBS_WRK_OUT. wrk's own percentiles are corrected by its stats_correct (an
-- expected-interval correction, like HdrHistogram's); they are kept as `wrk_p99_us`.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } mbs_timespec;
  int clock_gettime(int clk, mbs_timespec *ts);
]]
local ts = ffi.new("mbs_timespec")
local function now_s(clk)
  ffi.C.clock_gettime(clk, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

sent_wall, sent_mono, records = 0, 0, {}
function request()
  sent_wall, sent_mono = now_s(0), now_s(1)
  return wrk.request()
end

function response(status, headers, body)
  records[#records + 1] = string.format("[%.6f, %.3f, %d]", sent_wall,
                                        (now_s(1) - sent_mono) * 1000, status)
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("MBS_WRK_OUT"), "w"))
  local e = summary.errors
  out:write(string.format(
    '{"duration_us": %d, "requests": %d, "bytes": %d, "errors": {"connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d}, "wrk_p99_us": %d, ' ..
    '"wrk_p999_us": %d, "wrk_max_us": %d, "threads": [',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(99.0), latency:percentile(99.9), latency.max))
  for i, thread in ipairs(threads) do
    local rows = thread:get("records")
    out:write((i > 1 and ", [" or "[") .. table.concat(rows, ", ") .. "]")
  end
  out:write("]}\n")
  out:close()
end
