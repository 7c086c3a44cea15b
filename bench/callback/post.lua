-- wrk script: POST pre-signed WeChat pushes, one per request, from a file of
-- "path?query<TAB>body" lines (each push has its own MsgId, so no retry shortcut).
local reqs = {}
local n = 0
local i = 0

init = function(args)
  for line in io.lines(args[1]) do
    local p, b = line:match("([^\t]*)\t(.*)")
    n = n + 1
    reqs[n] = wrk.format("POST", p, {["Content-Type"] = "text/xml"}, b)
  end
end

request = function()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"p50\": %.3f, \"p99\": %.3f, \"non2xx\": %d, \"errors\": %d, \"lines\": %d}\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, n))
end
