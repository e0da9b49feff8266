-- heartbeat: move the deadline of each lease given that is still its unit's lease, and those
-- of the worker's latest grant still its own: the reserve sent with an acknowledge whose
-- reply the worker reads later (while it runs the units it holds) is kept alive before the
-- worker could tell its heartbeat helper about it. One call for every lease a worker holds.
-- A call none of whose leases is current changes nothing (a stale worker moves no lease).
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, lease timeout (ms), ttl (s), then unit, lease id for each lease
-- Returns: per lease given, 1 when it was extended, 0 when it is no longer this worker's.
local err = assert_populated()
if err then return err end
local worker = ARGV[1]
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local extended, deadlines = {}, {}
for i = 4, #ARGV, 2 do
  local unit = ARGV[i]
  if holds(unit, ARGV[i + 1]) and redis.call('ZSCORE', K.running, unit) then
    table.insert(deadlines, deadline)
    table.insert(deadlines, unit)
    table.insert(extended, 1)
  else
    table.insert(extended, 0)
  end
end
if #deadlines == 0 then return extended end
redis.call('ZADD', K.running, 'XX', unpack(deadlines))
last_grant(worker, nil, now, deadline)
redis.call('ZADD', K.workers, now, worker)
touch(tonumber(ARGV[3]), K.workers)
return extended
