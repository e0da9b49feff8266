-- release: a worker shutting down cleanly expires its lease at once, so the next reserving
-- worker takes the test over without waiting for the lease timeout.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker
-- Returns: the test released, or false when the worker held none.
local worker = ARGV[1]
local test = redis.call('HGET', K.held, worker)
if not test then return false end
redis.call('HDEL', K.held, worker)
if redis.call('HGET', K.holders, test) ~= worker then return false end
redis.call('ZADD', K.running, 'XX', 0, test)
return test
