-- heartbeat: move the deadline of `test` only if `lease` is still its lease.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, test, lease, lease timeout (ms)
-- Returns: 1 when the lease was extended, 0 when it is no longer this worker's.
local worker, test, lease = ARGV[1], ARGV[2], ARGV[3]
if not holds(test, lease) or not redis.call('ZSCORE', K.running, test) then return 0 end
local now = now_ms()
redis.call('ZADD', K.running, 'XX', now + tonumber(ARGV[4]), test)
redis.call('ZADD', K.workers, now, worker)
return 1
