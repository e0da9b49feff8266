-- populate: the first caller becomes the leader and pushes the tests; later callers follow.
-- KEYS: the key vector (see _prelude.lua), then basis (appended after the vector: only
--   populate writes it)
-- ARGV: worker, ttl (s), digest, chunk size, test ids..., basis (the attempt a retry queued
--   from, 0: the whole suite; see queue/retry.py)
-- Returns: {'leader' | 'follower', stored digest, total}. A leader's retried call returns
-- 'leader' without pushing again (the leader key is read back, not only set). A build whose
-- state is not whole (a marker gone, tests or results left without markers) is refused, never
-- populated over.
local err = check_state()
if err then return err end
local worker, ttl, digest, chunk = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
redis.call('SET', K.leader, worker, 'NX', 'EX', ttl)
if redis.call('GET', K.leader) ~= worker then
  return {'follower', redis.call('GET', K.digest) or '', redis.call('GET', K.total) or '0'}
end
if redis.call('EXISTS', K.ready) == 1 then
  return {'leader', redis.call('GET', K.digest), redis.call('GET', K.total)}
end
local total = #ARGV - 5
for first = 5, #ARGV - 1, chunk do
  local last = math.min(first + chunk - 1, #ARGV - 1)
  redis.call('RPUSH', K.queue, unpack(ARGV, first, last))
  redis.call('RPUSH', K.tests, unpack(ARGV, first, last))
end
redis.call('SET', K.total, total, 'EX', ttl)
redis.call('SET', K.digest, digest, 'EX', ttl)
redis.call('SET', KEYS[#KEYS], ARGV[#ARGV], 'EX', ttl)
redis.call('SET', K.ready, '1', 'EX', ttl)
touch(ttl, K.queue, K.tests)
return {'leader', digest, tostring(total)}
