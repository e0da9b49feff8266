-- status: one consistent view of the queue, for the supervisor.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: none
-- Returns: {ready (0|1), total, queued, running, finalized, failed, leases alive (deadline
--           not passed), ms since any worker was last seen (-1: never), now (ms)}
local err, populated = check_state()
if err then return err end
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
}
