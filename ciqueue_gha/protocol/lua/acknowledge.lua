-- acknowledge: settle a batch of finished attempts and, in the same round trip, reserve the
-- next window of units. Only the holder of a unit's current lease finalizes it (or, for a
-- failure it asks to requeue, puts it back into the queue while under the caps); a stale
-- holder's attempt is kept as an attempt and never touches running. A retried call (same
-- leases) changes nothing.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, ttl (s), lease timeout (ms), max failures (-1: none), reserve seq (0: do not
--       reserve), reserve count, max requeues per unit, max requeues for the build, requeue
--       offset from the head, leases the worker holds besides those it settles (leased, not
--       started), then five per attempt: unit, lease, outcome, attempt record
--       (JSON), requeue ('1': requeue a failure while under the caps, '0': never)
-- Returns: {disposition ('final' | 'stale' | 'requeued') per attempt..., reserve reply...
--   (when reserve seq is not 0)}
local err = assert_populated()
if err then return err end
local ttl = tonumber(ARGV[2])
local reply = settle_all(11, {tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])})
if ARGV[5] ~= '0' then
  local next_reply = reserve(ARGV[1], ARGV[5], now_ms(), tonumber(ARGV[3]), tonumber(ARGV[4]),
    tonumber(ARGV[6]), tonumber(ARGV[10]))
  for _, v in ipairs(next_reply) do table.insert(reply, v) end
end
touch_written(ttl)
return reply
