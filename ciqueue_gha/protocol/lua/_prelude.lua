-- Shared by every script: scripts.py prepends this file to each one before loading it.
-- KEYS: the key vector of keys.QUEUE_KEYS, in that order.
-- Every script's own ARGV starts after the prelude's, which takes none.
-- Every script that reads or writes a build first calls assert_populated() (or check_state(),
-- if it may run before populate): a build whose state is not whole is refused with the error
-- reply CIQ_STATE_LOST, which scripts.py turns into QueueStateLost (exit 4).

-- Redis < 7 needs this before writes that follow TIME; 7+ replicates effects always.
if redis.replicate_commands then redis.replicate_commands() end

local K = {}
for i, name in ipairs({'leader', 'ready', 'total', 'digest', 'tests', 'queue', 'running',
    'leases', 'holders', 'reservations', 'lease_counter', 'attempts', 'dispositions', 'last_attempt',
    'results', 'failed', 'requeues', 'requeued', 'takeovers', 'workers'}) do
  K[name] = KEYS[i]
end

-- Milliseconds on Redis's own clock: runners' clocks disagree, Redis's does not.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Give every key this call may have created a TTL, so a build never outlives KEY_TTL.
local function touch(ttl, ...)
  for _, key in ipairs({...}) do
    redis.call('EXPIRE', key, ttl)
  end
end

-- The build's state is whole or it is lost (DESIGN.md §2): after every script of a healthy
-- build all of these hold, so one that fails means Redis lost part of the build (evicted,
-- expired, flushed, a failover to a replica that lagged) and nothing it says can be trusted.
-- Populated (the markers leader, ready, total and digest: set together, never one alone):
--   the tests list holds `total` tests, and as many are queued, running or finalized;
--   each running test has a lease and a holder;
--   each attempt has a disposition and the reverse; each result is one of the attempts;
--   the lease counter is at least the number of distinct lease ids in sight (the attempts'
--   and the current leases': a current lease has no attempt yet).
-- Not populated: nothing of the build exists (the workers and reservations of release and
-- heartbeat aside, which say nothing about tests).
local MARKERS = {'leader', 'ready', 'total', 'digest'}

local function state_lost(what)
  return redis.error_reply('CIQ_STATE_LOST part of this build is gone from Redis (' .. what
    .. '; evicted, expired or flushed): queue state lost')
end

local function missing_markers()
  local gone = {}
  for _, name in ipairs(MARKERS) do
    if redis.call('EXISTS', K[name]) == 0 then table.insert(gone, name) end
  end
  return table.concat(gone, ', ')
end

local function count_mismatch(total)
  local tests = redis.call('LLEN', K.tests)
  if tests ~= total then
    return 'the tests list holds ' .. tests .. ' tests, the total says ' .. total
  end
  local queued, running, finalized =
    redis.call('LLEN', K.queue), redis.call('ZCARD', K.running), redis.call('HLEN', K.results)
  if queued + running + finalized ~= total then
    return queued .. ' queued + ' .. running .. ' running + ' .. finalized
      .. ' finalized tests, of ' .. total
  end
  local leases, holders = redis.call('HLEN', K.leases), redis.call('HLEN', K.holders)
  if leases ~= running or holders ~= running then
    return running .. ' running tests, ' .. leases .. ' leases, ' .. holders .. ' holders'
  end
  local attempts, dispositions = redis.call('HLEN', K.attempts), redis.call('HLEN', K.dispositions)
  if attempts ~= dispositions or finalized > attempts then
    return attempts .. ' attempts, ' .. dispositions .. ' dispositions, ' .. finalized .. ' results'
  end
  local issued = tonumber(redis.call('GET', K.lease_counter) or '0')
  if issued < attempts + leases then
    return 'lease counter ' .. issued .. ' below ' .. attempts .. ' attempts + ' .. leases
      .. ' current leases'
  end
  return nil
end

-- An error reply when the build's state is not whole, else nil and whether it is populated
-- (not populated: nothing of it exists yet).
local function check_state()
  local markers = redis.call('EXISTS', K.leader, K.ready, K.total, K.digest)
  if markers == 0 then
    if redis.call('EXISTS', K.tests, K.queue, K.running, K.leases, K.holders, K.results,
        K.attempts, K.dispositions, K.lease_counter) > 0 then
      return state_lost('its tests or results are there, its markers are not'), false
    end
    return nil, false
  end
  if markers < #MARKERS then return state_lost('marker gone: ' .. missing_markers()), false end
  local mismatch = count_mismatch(tonumber(redis.call('GET', K.total)))
  if mismatch then return state_lost(mismatch), false end
  return nil, true
end

-- check_state, and the build must be populated: one whose every key vanished was flushed or
-- restarted empty, and must never look like one not populated yet to a worker already in it.
local function assert_populated()
  local err, populated = check_state()
  if err then return err end
  if not populated then
    return redis.error_reply('CIQ_STATE_LOST the queue of this build is gone from Redis '
      .. '(restarted empty, flushed or evicted): queue state lost')
  end
  return nil
end

local function is_failure(outcome)
  return outcome == 'failed' or outcome == 'error'
end

-- Take `test` out of running and record `lease` as its authoritative attempt.
local function finalize(test, lease, outcome)
  redis.call('ZREM', K.running, test)
  redis.call('HDEL', K.leases, test)
  redis.call('HDEL', K.holders, test)
  redis.call('HDEL', K.last_attempt, test)
  redis.call('HSET', K.results, test, lease)
  redis.call('HSET', K.dispositions, lease, 'final')
  if is_failure(outcome) then redis.call('INCR', K.failed) end
end

-- Issue a new lease on `test` to `worker` for its reserve call `seq`; the old holder loses it.
local function grant(test, worker, seq, now, lease_timeout, takeover)
  local lease = tostring(redis.call('INCR', K.lease_counter))
  if takeover then redis.call('HINCRBY', K.takeovers, test, 1) end
  redis.call('HSET', K.leases, test, lease)
  redis.call('HSET', K.holders, test, worker)
  redis.call('HSET', K.reservations, worker, cjson.encode({seq, test, lease}))
  redis.call('ZADD', K.running, now + lease_timeout, test)
  return {'lease', test, lease, tostring(now)}
end

local function holds(test, lease)
  return redis.call('HGET', K.leases, test) == lease
end

-- The next test for `worker`. `seq` numbers the worker's reserve calls: a call that repeats
-- the seq of the worker's last granted reservation is a retry whose reply was lost, and gets
-- that same lease back while it is still the worker's. Otherwise: an expired lease first,
-- then the head of the queue.
-- Returns {'lease', test, id, now in ms} | {'wait', ms} | {'stopped'} | {'exhausted'}.
local function reserve(worker, seq, now, lease_timeout, max_failures, ttl)
  redis.call('ZADD', K.workers, now, worker)
  local last = redis.call('HGET', K.reservations, worker)
  if last then
    local r = cjson.decode(last)
    if r[1] == seq and holds(r[2], r[3]) and redis.call('ZSCORE', K.running, r[2]) then
      redis.call('ZADD', K.running, now + lease_timeout, r[2])
      return {'lease', r[2], r[3], tostring(now)}
    end
  end
  if max_failures >= 0 and tonumber(redis.call('GET', K.failed) or '0') >= max_failures then
    return {'stopped'}
  end
  local result = nil
  while true do
    local expired = redis.call('ZRANGEBYSCORE', K.running, '-inf', now, 'LIMIT', 0, 1)
    if #expired == 0 then break end
    local test = expired[1]
    local done = redis.call('HGET', K.last_attempt, test)
    if done then
      -- Already run to completion once: finalize from that attempt, don't run it again.
      local sep = string.find(done, ':', 1, true)
      finalize(test, string.sub(done, 1, sep - 1), string.sub(done, sep + 1))
    else
      result = grant(test, worker, seq, now, lease_timeout, true)
      break
    end
  end
  if not result then
    local test = redis.call('LPOP', K.queue)
    if test then result = grant(test, worker, seq, now, lease_timeout, false) end
  end
  touch(ttl, K.workers, K.reservations, K.holders, K.leases, K.running, K.lease_counter, K.takeovers,
    K.results, K.failed)
  if result then return result end
  local next_deadline = redis.call('ZRANGE', K.running, 0, 0, 'WITHSCORES')
  if #next_deadline == 0 then return {'exhausted'} end
  return {'wait', tostring(math.max(0, tonumber(next_deadline[2]) - now))}
end

-- Store an attempt once per lease; returns the earlier disposition when this is a retry.
local function record_attempt(lease, payload)
  local prior = redis.call('HGET', K.dispositions, lease)
  if prior then return prior end
  redis.call('HSET', K.attempts, lease, payload)
  return nil
end

-- An attempt by a holder that lost its lease: kept, and remembered for finalize-on-expiry.
local function record_stale(test, lease, outcome)
  redis.call('HSET', K.dispositions, lease, 'stale')
  if redis.call('HEXISTS', K.results, test) == 0 then
    redis.call('HSET', K.last_attempt, test, lease .. ':' .. outcome)
  end
  return 'stale'
end

-- What acknowledge and requeue share (ARGV 2 to 5: test, lease, outcome, attempt record): a
-- retried call gets its earlier disposition back; a stale holder's attempt is kept as stale;
-- the current holder's attempt is settled by `decide(test, lease, outcome)`.
local function settle(decide)
  local test, lease, outcome = ARGV[2], ARGV[3], ARGV[4]
  local prior = record_attempt(lease, ARGV[5])
  if prior then return prior end
  if not holds(test, lease) then return record_stale(test, lease, outcome) end
  return decide(test, lease, outcome)
end

-- The reply acknowledge and requeue share (their ARGV 1 and 6 to 9 alike): the attempt's
-- disposition, then, when a reserve seq is given, the next reserve's reply in the same round trip.
local function reply_and_reserve(disposition)
  local reply = {disposition}
  if ARGV[9] ~= '0' then
    local ttl = tonumber(ARGV[6])
    for _, v in ipairs(reserve(ARGV[1], ARGV[9], now_ms(), tonumber(ARGV[7]), tonumber(ARGV[8]), ttl)) do
      table.insert(reply, v)
    end
  end
  return reply
end
