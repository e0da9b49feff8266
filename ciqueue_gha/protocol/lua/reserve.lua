-- reserve: lease the next units to a worker, a window of up to `count` (see reserve() in
-- _prelude.lua).
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, reserve seq (numbers this worker's calls; a retry repeats it), lease timeout (ms),
--       max failures (-1: none), ttl (s), count (leases asked for, at least 1), leases the
--       worker holds besides (leased, not run)
-- Returns: {'lease', Redis's time in ms, unit, lease id, unit, lease id, ...}
--   | {'wait', ms to the next deadline} | {'stopped'} | {'exhausted'}
local err = assert_populated()
if err then return err end
local reply = reserve(ARGV[1], ARGV[2], now_ms(), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[6]), tonumber(ARGV[7]))
touch_written(tonumber(ARGV[5]))
return reply
