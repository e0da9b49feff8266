-- heartbeat: move the deadline of `test` only if `lease` is still its lease; and then that of
-- the worker's latest grant too, if still its own: the reserve sent with an acknowledge whose
-- reply the worker reads later (while its next test runs) is kept alive before the worker
-- could tell its heartbeat helper about it.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, test, lease, lease timeout (ms)
-- Returns: 1 when `lease` was extended, 0 when it is no longer this worker's.
local err = assert_populated()
if err then return err end
local worker, test, lease = ARGV[1], ARGV[2], ARGV[3]
if not holds(test, lease) or not redis.call('ZSCORE', K.running, test) then return 0 end
local now = now_ms()
local deadline = now + tonumber(ARGV[4])
redis.call('ZADD', K.running, 'XX', deadline, test)
local latest = redis.call('HGET', K.reservations, worker)
if latest then
  local r = cjson.decode(latest)
  if holds(r[2], r[3]) then redis.call('ZADD', K.running, 'XX', deadline, r[2]) end
end
redis.call('ZADD', K.workers, now, worker)
return 1
