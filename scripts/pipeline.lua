-- wrk script: send DEPTH pipelined requests per write (default 16).
--   wrk -s scripts/pipeline.lua URL -- DEPTH
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, wrk.path)
   end
   req = table.concat(r)
end

request = function()
   return req
end
