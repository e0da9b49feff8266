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
    'leases', 'reservations', 'lease_counter', 'attempts', 'dispositions', 'last_attempt',
    'results', 'failed', 'requeues', 'requeued', 'takeovers', 'workers', 'ended', 'claims'}) do
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

-- The keys this call wrote (not those it only deleted from): each gets its TTL once, at the
-- end of the call (touch_written), whatever number of writes it took.
local written = {}
local function wrote(...)
  for _, key in ipairs({...}) do written[key] = true end
end
local function touch_written(ttl)
  for key in pairs(written) do redis.call('EXPIRE', key, ttl) end
end

-- The build's state is whole or it is lost (DESIGN.md §2): after every script of a healthy
-- build all of these hold, so one that fails means Redis lost part of the build (evicted,
-- expired, flushed, a failover to a replica that lagged) and nothing it says can be trusted.
-- Populated (the markers leader, ready, total and digest: set together, never one alone):
--   the tests list holds `total` tests, and as many are queued, running or finalized;
--   each running test has a lease (and its holder);
--   each attempt is final (its unit's result) or has a disposition, never both, and each
--   result and disposition is one of the attempts;
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
  local leases = redis.call('HLEN', K.leases)
  if leases ~= running then
    return running .. ' running tests, ' .. leases .. ' leases'
  end
  local attempts, dispositions = redis.call('HLEN', K.attempts), redis.call('HLEN', K.dispositions)
  if attempts ~= dispositions + finalized then
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
    if redis.call('EXISTS', K.tests, K.queue, K.running, K.leases, K.results,
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

-- Redis keeps a small hash or sorted set as a listpack, searched end to end at each access.
-- leases and running hold a window or so per worker and are rewritten by every call, results
-- is written by every call: as listpacks, their searches took a fifth of a whole build's Redis
-- time (benchmarks/redis_cost, short test ids). An entry longer than a listpack takes, there
-- only while the key is created, makes Redis keep it as a hash table (a skiplist) until it is
-- deleted: `widen` before the first write, `narrow` after it.
local function wide()  -- made when needed: the prelude runs at every call
  return '\n' .. string.rep('-', 1024)
end

local function widen(key, zset)
  if redis.call('EXISTS', key) == 1 then return false end
  if zset then redis.call('ZADD', key, 0, wide()) else redis.call('HSET', key, wide(), '') end
  return true
end

local function narrow(key, zset, widened)
  if not widened then return end
  if zset then redis.call('ZREM', key, wide()) else redis.call('HDEL', key, wide()) end
end

-- Take `units` (each settled under its current lease, `leases[i]`) out of running, and record
-- each lease as its unit's authoritative attempt: one command per key for the whole batch.
-- A final attempt has no disposition: its unit's result names it (dispositions keeps the
-- others, stale and requeued), one write a test less on every build's hot path.
local function finalize_all(units, leases, failures)
  if #units == 0 then return end
  redis.call('ZREM', K.running, unpack(units))
  redis.call('HDEL', K.leases, unpack(units))
  -- Only a stale holder's attempt is kept there: most builds never have one.
  if redis.call('EXISTS', K.last_attempt) == 1 then
    redis.call('HDEL', K.last_attempt, unpack(units))
  end
  -- Indexed, not table.insert: this loop and grant's run once a unit, on every build's hot path.
  local results = {}
  for i, unit in ipairs(units) do
    results[2 * i - 1], results[2 * i] = unit, leases[i]
  end
  local wide = widen(K.results)
  redis.call('HSET', K.results, unpack(results))
  narrow(K.results, false, wide)
  wrote(K.results)
  -- The last test finalized: wake the supervisor blocked on `ended` (it looks at once).
  if redis.call('HLEN', K.results) == tonumber(redis.call('GET', K.total))
      and redis.call('EXISTS', K.ended) == 0 then
    redis.call('RPUSH', K.ended, '1')
    wrote(K.ended)
  end
  if failures > 0 then
    redis.call('INCRBY', K.failed, failures)
    wrote(K.failed)
  end
end

local function is_failure(outcome)
  return outcome == 'failed' or outcome == 'error'
end

-- One unit; its attempt may have been stale until now (an expired unit finalized from it):
-- final, it has no disposition.
local function finalize(unit, lease, outcome)
  redis.call('HDEL', K.dispositions, lease)
  finalize_all({unit}, {lease}, is_failure(outcome) and 1 or 0)
end

-- Issue new leases on `units` to `worker` for its reserve call `seq`, in one command per key;
-- `taken_over` counts the first ones, expired leases taken over. Old holders lose them. A
-- unit's entry in leases is "<lease id> <holder>" (see `holds`).
-- Returns the reserve reply: {'lease', now, unit, lease id, unit, lease id, ...}.
local function grant(units, taken_over, worker, seq, now, lease_timeout)
  local last = redis.call('INCRBY', K.lease_counter, #units)
  local leases, deadlines = {}, {}
  local reply, record = {'lease', tostring(now)}, {seq}
  -- A string once: a number would be formatted again for each unit's ZADD argument.
  local deadline = tostring(now + lease_timeout)
  for i, unit in ipairs(units) do
    local lease = tostring(last - #units + i)
    if i <= taken_over then
      redis.call('HINCRBY', K.takeovers, unit, 1)
      wrote(K.takeovers)
    end
    local at = 2 * i
    leases[at - 1], leases[at] = unit, lease .. ' ' .. worker
    reply[at + 1], reply[at + 2] = unit, lease
    record[at], record[at + 1] = unit, lease
    deadlines[at - 1], deadlines[at] = deadline, unit
  end
  local wide_leases, wide_running = widen(K.leases), widen(K.running, true)
  redis.call('HSET', K.leases, unpack(leases))
  redis.call('ZADD', K.running, unpack(deadlines))
  narrow(K.leases, false, wide_leases)
  narrow(K.running, true, wide_running)
  redis.call('HSET', K.reservations, worker, cjson.encode(record))
  wrote(K.lease_counter, K.leases, K.running, K.reservations)
  return reply
end

-- Whether `entry` (a unit's value in leases, or nil) is lease id `lease`, whoever holds it.
local function is_lease(entry, lease)
  return entry ~= false and entry ~= nil and string.sub(entry, 1, #lease + 1) == lease .. ' '
end

-- Whether `lease` is the current lease of `unit`.
local function holds(unit, lease)
  return is_lease(redis.call('HGET', K.leases, unit), lease)
end

-- The leases of `worker`'s last granted reserve that are still its own, as a reserve reply
-- (their deadlines moved when `deadline` is given); nil when it holds none of them. `seq`:
-- only for that call (a retry), nil: whatever call it was.
local function last_grant(worker, seq, now, deadline)
  local last = redis.call('HGET', K.reservations, worker)
  if not last then return nil end
  -- The seq is the record's first string: a reserve that is not a retry (nearly every one)
  -- does not decode the whole record to learn so.
  if seq and string.sub(last, 1, #seq + 3) ~= '["' .. seq .. '"' then return nil end
  local r = cjson.decode(last)
  local reply = {'lease', tostring(now)}
  for i = 2, #r, 2 do
    if holds(r[i], r[i + 1]) and redis.call('ZSCORE', K.running, r[i]) then
      if deadline then redis.call('ZADD', K.running, 'XX', deadline, r[i]) end
      table.insert(reply, r[i])
      table.insert(reply, r[i + 1])
    end
  end
  if #reply == 2 then return nil end
  return reply
end

-- Expired leases for a new grant, at most `count`: a unit already run to completion once is
-- finalized from that attempt instead (never run again). Returns the units to grant.
local function expired_units(now, count)
  local units = {}
  while #units < count do
    -- The units chosen so far stay first in the expired range: skip them.
    local expired = redis.call('ZRANGEBYSCORE', K.running, '-inf', now, 'LIMIT', #units,
      count - #units)
    if #expired == 0 then return units end
    for _, unit in ipairs(expired) do
      local done = redis.call('HGET', K.last_attempt, unit)
      if done then
        local sep = string.find(done, ':', 1, true)
        finalize(unit, string.sub(done, 1, sep - 1), string.sub(done, sep + 1))
      else
        table.insert(units, unit)
      end
    end
  end
  return units
end

-- The live workers: seen within a lease timeout, or holding a live claim on their id (claim.lua:
-- a worker claims it as it starts, before it collects its tests and first reserves).
local function live_workers(now, lease_timeout)
  local seen = redis.call('ZCOUNT', K.workers, now - lease_timeout, '+inf')
  if redis.call('HLEN', K.claims) <= seen then return seen end
  local claimed = 0
  for _, held in ipairs(redis.call('HVALS', K.claims)) do  -- "<token> <deadline ms>"
    if tonumber(string.sub(held, string.find(held, ' ', 1, true) + 1)) > now then
      claimed = claimed + 1
    end
  end
  return math.max(seen, claimed)
end

-- How many leases one call grants, so that no unit waits behind a busy worker while another
-- is idle: what the worker asks for, but at most its share among the live workers (those
-- that started and have not reserved yet too) of what can be handed out (queued, or
-- expired), and at most what brings what it holds (`holding`: leased, not started) up to
-- its share of every unit not finalized (queued, or leased to anyone). Without the second,
-- a worker whose units are fast, asking again after each, took the whole queue by halves
-- while another ran its first unit (and units whose durations nobody knows turn out slow).
-- At least one to a worker that holds nothing; to one that holds its share, expired leases
-- only (taken over at once), else none: it gets a wait.
local function window(count, holding, now, lease_timeout)
  if count <= 1 and holding == 0 then return 1 end
  local queued = redis.call('LLEN', K.queue)
  local expired = redis.call('ZCOUNT', K.running, '-inf', now)
  local live = math.max(1, live_workers(now, lease_timeout))
  local share = math.ceil((queued + redis.call('ZCARD', K.running)) / live) - holding
  local least = 1
  if holding > 0 then least = math.min(count, expired) end
  return math.max(least, math.min(count, math.ceil((queued + expired) / live), share))
end

-- The next units for `worker`, up to `count` (see `window`; it holds `holding` besides).
-- `seq` numbers the worker's reserve calls: a call that repeats the seq of the worker's last
-- granted reserve is a retry whose reply was lost, and gets the leases of that grant back
-- that are still its own.
-- Otherwise: expired leases first, then the head of the queue.
-- Returns {'lease', now in ms, unit, id, ...} | {'wait', ms} | {'stopped'} | {'exhausted'}.
-- The caller gives what it wrote a TTL (touch_written).
local function reserve(worker, seq, now, lease_timeout, max_failures, count, holding)
  redis.call('ZADD', K.workers, now, worker)
  wrote(K.workers)
  local retried = last_grant(worker, seq, now, now + lease_timeout)
  if retried then return retried end
  if max_failures >= 0 and tonumber(redis.call('GET', K.failed) or '0') >= max_failures then
    return {'stopped'}
  end
  count = window(count, holding, now, lease_timeout)
  local units = expired_units(now, count)
  local taken_over = #units
  if #units < count then
    for _, unit in ipairs(redis.call('LRANGE', K.queue, 0, count - #units - 1)) do
      table.insert(units, unit)
    end
    if #units > taken_over then redis.call('LTRIM', K.queue, #units - taken_over, -1) end
  end
  local result = nil
  if #units > 0 then result = grant(units, taken_over, worker, seq, now, lease_timeout) end
  if result then return result end
  local next_deadline = redis.call('ZRANGE', K.running, 0, 0, 'WITHSCORES')
  if #next_deadline == 0 then return {'exhausted'} end
  return {'wait', tostring(math.max(0, tonumber(next_deadline[2]) - now))}
end

-- An attempt by a holder that lost its lease: kept, and remembered for finalize-on-expiry.
local function record_stale(test, lease, outcome)
  redis.call('HSET', K.dispositions, lease, 'stale')
  wrote(K.dispositions)
  if redis.call('HEXISTS', K.results, test) == 0 then
    redis.call('HSET', K.last_attempt, test, lease .. ':' .. outcome)
    wrote(K.last_attempt)
  end
  return 'stale'
end

-- A requeue of `unit` by its current holder: back into the queue, REQUEUE_OFFSET from the
-- head, while under the per-unit and build-wide caps (`caps`: per unit, build, offset);
-- past them nil (the failure is final).
local function requeue(unit, lease, caps)
  if tonumber(redis.call('HGET', K.requeues, unit) or '0') >= caps[1]
      or tonumber(redis.call('GET', K.requeued) or '0') >= caps[2] then
    return nil
  end
  redis.call('HINCRBY', K.requeues, unit, 1)
  redis.call('INCR', K.requeued)
  redis.call('ZREM', K.running, unit)
  redis.call('HDEL', K.leases, unit)
  redis.call('HDEL', K.last_attempt, unit)
  local pivot = redis.call('LINDEX', K.queue, caps[3])
  if pivot then
    redis.call('LINSERT', K.queue, 'BEFORE', pivot, unit)
  else
    redis.call('RPUSH', K.queue, unit)
  end
  redis.call('HSET', K.dispositions, lease, 'requeued')
  wrote(K.requeues, K.requeued, K.queue, K.dispositions)
  return 'requeued'
end

-- Settle a batch of finished attempts. ARGV from `first`: groups of five (unit, lease,
-- outcome, attempt record JSON, requeue: '1' to requeue a failure while under `caps`). A
-- retried attempt gets its earlier disposition back; a stale holder's is kept as stale; the
-- current holder's is finalized (or requeued). Returns the dispositions, in order.
local function settle_all(first, caps)
  local units, leases = {}, {}
  for i = first, #ARGV, 5 do
    table.insert(units, ARGV[i])
    table.insert(leases, ARGV[i + 1])
  end
  if #units == 0 then return {} end
  -- Within a batch each lease appears once (a worker settles an attempt once per call).
  local entries = redis.call('HMGET', K.leases, unpack(units))
  -- Settling a lease ends it (its unit's lease is deleted, or a later one), and lease ids
  -- are never issued twice: an attempt under its unit's current lease was never settled,
  -- and only the others are looked up for an earlier disposition (a retried call's: final
  -- when its unit's result names it).
  local current, prior, others, at = {}, {}, {}, {}
  for n = 1, #units do
    current[n] = is_lease(entries[n], leases[n])
    if not current[n] then
      table.insert(others, leases[n])
      table.insert(at, n)
    end
  end
  if #others > 0 then
    local found = redis.call('HMGET', K.dispositions, unpack(others))
    for i, n in ipairs(at) do
      prior[n] = found[i] or (redis.call('HGET', K.results, units[n]) == leases[n] and 'final')
    end
  end
  local out, final_units, final_leases, failures, attempts = {}, {}, {}, 0, {}
  for n, unit in ipairs(units) do
    local i, lease = first + 5 * (n - 1), leases[n]
    local outcome = ARGV[i + 2]
    if prior[n] then
      out[n] = prior[n]
    else
      table.insert(attempts, lease)
      table.insert(attempts, ARGV[i + 3])
      if not current[n] then
        out[n] = record_stale(unit, lease, outcome)
      elseif ARGV[i + 4] == '1' and is_failure(outcome) and requeue(unit, lease, caps) then
        out[n] = 'requeued'
      else
        out[n] = 'final'
        table.insert(final_units, unit)
        table.insert(final_leases, lease)
        if is_failure(outcome) then failures = failures + 1 end
      end
    end
  end
  if #attempts > 0 then
    redis.call('HSET', K.attempts, unpack(attempts))
    wrote(K.attempts)
  end
  finalize_all(final_units, final_leases, failures)
  return out
end
