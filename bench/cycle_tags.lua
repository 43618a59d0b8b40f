-- wrk script: GET /tags/<prefix><n> cycling over N distinct tags (default 10,000).
-- Each wrk thread starts at a different offset so threads do not request the same tag together.
-- Usage: wrk -s bench/cycle_tags.lua http://host:port -- <count> <prefix>
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  n = tonumber(args[1] or "10000")
  prefix = args[2] or "tag"
  i = (tid or 0) * math.floor(n / 2)
end

function request()
  i = i + 1
  return wrk.format("GET", string.format("/tags/%s%05d", prefix, i % n))
end
