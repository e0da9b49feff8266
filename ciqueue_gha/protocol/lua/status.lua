-- status: one consistent view of the queue, and whether it is whole, for the supervisor: one
-- call a look (a read-only script runs when Redis is out of memory; a transaction would not).
-- KEYS: the key vector (see _prelude.lua), then stopped, interrupted and basis (appended after
--   the vector: no other queue script reads them)
-- ARGV: none
-- Returns: {ready (0|1), total, queued, running, finalized, failed, leases alive (deadline
--           not passed), ms since any worker was last seen (-1: never), now (ms),
--           stopped (0|1), interrupted (0|1)}
local err, populated = check_state()
if err then return err end
local stopped, interrupted, basis = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]
-- Populate writes the basis with the markers: one without the other is lost too.
if (redis.call('EXISTS', basis) == 1) ~= populated then
  if populated then return state_lost('marker gone: basis') end
  return state_lost('its basis is there, its markers are not')
end
local now = now_ms()
local seen = redis.call('ZRANGE', K.workers, -1, -1, 'WITHSCORES')
local since = -1
if #seen > 0 then since = now - tonumber(seen[2]) end
return {
  populated and 1 or 0,
  tonumber(redis.call('GET', K.total) or '0'),
  redis.call('LLEN', K.queue),
  redis.call('ZCARD', K.running),
  redis.call('HLEN', K.results),
  tonumber(redis.call('GET', K.failed) or '0'),
  redis.call('ZCOUNT', K.running, '(' .. now, '+inf'),
  since,
  now,
  redis.call('EXISTS', stopped),
  redis.call('EXISTS', interrupted),
}
