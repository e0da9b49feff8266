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
local leases = redis.call('HGETALL', K.leases)  -- unit -> "<lease id> <holder>"
for i = 1, #leases, 2 do
  local entry = leases[i + 1]
  local holder = string.sub(entry, string.find(entry, ' ', 1, true) + 1)
  if holder == worker and redis.call('ZSCORE', K.running, leases[i]) then
    redis.call('ZADD', K.running, 'XX', 0, leases[i])
    table.insert(released, leases[i])
  end
end
redis.call('HDEL', K.reservations, worker)
return released
