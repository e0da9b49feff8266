-- requeue: the current holder of a failed test puts it back into the queue, REQUEUE_OFFSET
-- from the head, while under the per-test and build-wide caps; past the caps the failure is
-- final, exactly as acknowledge would make it. The next reserve shares the round trip.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, test, lease, outcome, attempt record (JSON), ttl (s), lease timeout (ms),
--       max failures (-1: none), reserve seq (0: do not reserve next), max requeues per test,
--       max requeues for the build, offset from the head
-- Returns: {disposition ('requeued' | 'final' | 'stale'), reserve reply... (when reserve seq is not 0)}
local err = assert_populated()
if err then return err end
local disposition = settle(function(test, lease, outcome)
  if tonumber(redis.call('HGET', K.requeues, test) or '0') >= tonumber(ARGV[10])
      or tonumber(redis.call('GET', K.requeued) or '0') >= tonumber(ARGV[11]) then
    finalize(test, lease, outcome)
    return 'final'
  end
  redis.call('HINCRBY', K.requeues, test, 1)
  redis.call('INCR', K.requeued)
  redis.call('ZREM', K.running, test)
  redis.call('HDEL', K.leases, test)
  redis.call('HDEL', K.holders, test)
  redis.call('HDEL', K.last_attempt, test)
  local pivot = redis.call('LINDEX', K.queue, tonumber(ARGV[12]))
  if pivot then
    redis.call('LINSERT', K.queue, 'BEFORE', pivot, test)
  else
    redis.call('RPUSH', K.queue, test)
  end
  redis.call('HSET', K.dispositions, lease, 'requeued')
  return 'requeued'
end)
touch(tonumber(ARGV[6]), K.attempts, K.dispositions, K.last_attempt, K.requeues, K.requeued, K.queue,
  K.results, K.failed)
return reply_and_reserve(disposition)
