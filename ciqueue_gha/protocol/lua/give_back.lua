-- give_back: a worker whose running unit overran its window gives back the leases it holds and
-- has not started (its heartbeat helper does, while the unit runs): each still its own goes
-- back to the head of the queue, in order, for the next reserving worker, charged to no
-- requeue cap and with no attempt; one taken over meanwhile is left alone.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, ttl (s), then unit, lease id for each lease
-- Returns: the units given back.
local err = assert_populated()
if err then return err end
local back = {}
for i = 3, #ARGV, 2 do
  local unit = ARGV[i]
  if holds(unit, ARGV[i + 1]) and redis.call('ZSCORE', K.running, unit) then
    redis.call('ZREM', K.running, unit)
    redis.call('HDEL', K.leases, unit)
    redis.call('HDEL', K.last_attempt, unit)  -- it runs again, as a requeued unit does
    table.insert(back, unit)
  end
end
for i = #back, 1, -1 do redis.call('LPUSH', K.queue, back[i]) end
if #back > 0 then touch(tonumber(ARGV[2]), K.queue) end
return back
