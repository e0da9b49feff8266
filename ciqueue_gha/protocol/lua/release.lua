-- release: a worker shutting down cleanly expires its leases at once, so the next reserving
-- worker takes its tests over without waiting for the lease timeout.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker
-- Returns: the tests released (none from a build never populated: a worker that stops before
-- it populated releases too).
local err = check_state()
if err then return err end
local worker = ARGV[1]
local released = {}
local holders = redis.call('HGETALL', K.holders)
for i = 1, #holders, 2 do
  if holders[i + 1] == worker and redis.call('ZSCORE', K.running, holders[i]) then
    redis.call('ZADD', K.running, 'XX', 0, holders[i])
    table.insert(released, holders[i])
  end
end
redis.call('HDEL', K.reservations, worker)
return released
