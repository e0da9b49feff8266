-- trip: a worker's circuit breaker (queue/breaker.py). The worker held the leases of a streak of
-- failed units without acknowledging them; it now stops taking work, and the streak goes back
-- to the head of the queue, for other workers, charged to no requeue cap and with no attempt
-- recorded: a unit's outcome is what a healthy worker sees. Each unit given back is noted in
-- given-back, so a worker that fails it again knows not to count it toward its own breaker.
-- The last live worker to trip (no other live worker that has not tripped: a live claim on
-- its id, or seen within a lease timeout) has no one to give its streak to: its attempts are
-- finalized as failures and the build is marked stopped (as --max-failures does).
-- KEYS: the key vector (see _prelude.lua), then keys.BREAKER_KEYS (tripped, given-back,
--       stopped)
-- ARGV: worker, ttl (s), lease timeout (ms), note (JSON: kept in tripped), then for each
--       unit of the streak: unit, lease, outcome, attempt record (JSON);
--       a unit leased and not started: unit, lease, '', '' (given back as it is, or left to
--       the worker's release when the build stops)
-- Returns: {'given back', units...} | {'finalized'}
-- A retried call changes nothing: its units are no longer held, and the decision made first
-- (kept in the note) stands.
local err = assert_populated()
if err then return err end
local tripped, given_back, stopped = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]
local worker, ttl, lease_timeout = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()

local function stopped_already(other)
  return redis.call('HEXISTS', tripped, other) == 1
end

-- Whether a worker besides this one, not stopped, may still run what is given back.
local function others_live()
  local held = redis.call('HGETALL', K.claims)
  for i = 1, #held, 2 do
    local sep = string.find(held[i + 1], ' ', 1, true)
    local deadline = tonumber(string.sub(held[i + 1], sep + 1))
    if held[i] ~= worker and deadline > now and not stopped_already(held[i]) then return true end
  end
  for _, other in ipairs(redis.call('ZRANGEBYSCORE', K.workers, now - lease_timeout, '+inf')) do
    if other ~= worker and not stopped_already(other) then return true end
  end
  return false
end

-- Store an attempt once per lease; returns true when it was stored before (a retry).
local function record_attempt(lease, payload)
  if redis.call('HEXISTS', K.attempts, lease) == 1 then return true end
  redis.call('HSET', K.attempts, lease, payload)
  return false
end

local function each_unit(f)
  for i = 5, #ARGV, 4 do f(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) end
end

local last
local prior = redis.call('HGET', tripped, worker)
if prior then
  last = cjson.decode(prior).last
else
  last = not others_live()
  local note = cjson.decode(ARGV[4])
  note.last = last
  redis.call('HSET', tripped, worker, cjson.encode(note))
end
touch(ttl, tripped)

if last then
  each_unit(function(unit, lease, outcome, record)
    if outcome == '' or record_attempt(lease, record) then return end  -- unrun, or a retry
    if holds(unit, lease) then finalize(unit, lease, outcome) else record_stale(unit, lease, outcome) end
  end)
  redis.call('SET', stopped, 'breaker', 'EX', ttl)
  touch(ttl, K.attempts, K.dispositions, K.last_attempt, K.results, K.failed)
  return {'finalized'}
end

local back = {}
each_unit(function(unit, lease, outcome)
  if holds(unit, lease) and redis.call('ZSCORE', K.running, unit) then
    redis.call('ZREM', K.running, unit)
    redis.call('HDEL', K.leases, unit)
    redis.call('HDEL', K.last_attempt, unit)
    if outcome ~= '' then redis.call('HSET', given_back, unit, worker) end
    table.insert(back, unit)
  end
end)
for i = #back, 1, -1 do redis.call('LPUSH', K.queue, back[i]) end
touch(ttl, given_back, K.queue)
local reply = {'given back'}
for _, unit in ipairs(back) do table.insert(reply, unit) end
return reply
