-- claim: take a worker id for the process holding `token`, or keep the one it holds.
-- Not a queue script: no prelude, and its own keys.
-- KEYS: keys.CLAIM_KEYS: claims, collisions
-- ARGV: worker id, token, claim timeout (ms), key ttl (s), tries
-- The id itself is tried first, then <id>~2, <id>~3, ... up to `tries` ids; the first that no
-- live other process holds (absent, expired, or held under `token`) is claimed until
-- now + timeout. An id other than the one asked for is recorded in collisions.
-- Returns: the id claimed, or false when live others hold all `tries` of them.
if redis.replicate_commands then redis.replicate_commands() end
local claims, collisions = KEYS[1], KEYS[2]
local id, token, timeout, ttl, tries = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function free(candidate)
  local held = redis.call('HGET', claims, candidate)
  if not held then return true end
  local sep = string.find(held, ' ', 1, true)
  return string.sub(held, 1, sep - 1) == token or tonumber(string.sub(held, sep + 1)) <= now
end

for n = 1, tries do
  local candidate = id
  if n > 1 then candidate = id .. '~' .. n end
  if free(candidate) then
    redis.call('HSET', claims, candidate, token .. ' ' .. (now + timeout))
    redis.call('EXPIRE', claims, ttl)
    if n > 1 then
      redis.call('HSET', collisions, candidate, id)
      redis.call('EXPIRE', collisions, ttl)
    end
    return candidate
  end
end
return false
