-- acknowledge: record a finished attempt and, in the same round trip, reserve the next test.
-- Only the holder of the test's current lease finalizes it; a stale holder's attempt is kept
-- as an attempt and never touches running. A retried call (same lease) changes nothing.
-- KEYS: the key vector (see _prelude.lua)
-- ARGV: worker, test, lease, outcome, attempt record (JSON), ttl (s), lease timeout (ms),
--       max failures (-1: none), reserve seq (0: do not reserve next)
-- Returns: {disposition ('final' | 'stale'), reserve reply... (when reserve seq is not 0)}
local err = assert_populated()
if err then return err end
local disposition = settle(function(test, lease, outcome)
  finalize(test, lease, outcome)
  return 'final'
end)
touch(tonumber(ARGV[6]), K.attempts, K.dispositions, K.last_attempt, K.results, K.failed)
return reply_and_reserve(disposition)
