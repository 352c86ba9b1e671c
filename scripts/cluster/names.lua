-- wrk script: /inc over NAMES counters k0 .. k(NAMES-1), taken in turn (default 1000).
--   wrk -t1 -s scripts/cluster/names.lua URL -- NAMES
-- At the end it prints `issued N`: how many requests were started. The k-th went to
-- name k % NAMES, so after a run each counter's value is known up to the requests still
-- in flight when wrk stopped (issued minus completed). Meant for one thread (-t1).
local threads = {}

setup = function(thread)
   table.insert(threads, thread)
end

init = function(args)
   local n = tonumber(args[1]) or 1000
   reqs = {}
   for i = 0, n - 1 do
      reqs[i] = wrk.format(nil, "/inc?name=k" .. i)
   end
   names = n
   -- wrk 4 calls request() once on the first thread's state to check the script before
   -- the run (script_verify_request); that request is never sent. Start at -1 so the
   -- first request sent is number 0.
   issued = -1
end

request = function()
   local r = reqs[issued % names]
   issued = issued + 1
   return r
end

done = function(summary, latency, requests)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + t:get("issued")
   end
   io.write(string.format("issued %d\n", total))
end
