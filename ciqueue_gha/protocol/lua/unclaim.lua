-- unclaim: a process ending cleanly gives its worker id back, if it still holds it.
-- Not a queue script: no prelude, and its own keys.
-- KEYS: keys.CLAIM_KEYS: claims, collisions
-- ARGV: worker id, token
-- Returns: 1 when the id was given back, 0 when another process holds it (or none).
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
