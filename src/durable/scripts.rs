//! The Lua scripts that change the queue's state in Redis.
//!
//! Every change that touches more than one key runs as one script, so Redis
//! applies it atomically: no other client sees a job in two sets or in none.
//! The key layout and the rank format the scripts share are written down in
//! the [module docs](super#the-redis-data-model); the helpers below are
//! pasted into each script that needs them (a script cannot call another).
//!
//! Conventions: `KEYS` are the queue's sorted sets and counter, in the order
//! [`Keys`](super::client) passes them; `ARGV[1]` is the key prefix, from
//! which a script derives a job's hash key `<prefix>:job:<id>`. Times are
//! Redis's own clock (`TIME`, in milliseconds), so hosts with skewed clocks
//! agree on when a lease runs out.

use redis::Script;

/// Helpers shared by the scripts: the clock, the job key, the due-work step.
///
/// `tick` moves due delayed jobs to the ready set and expired leases back to
/// the ready set at their rank, at most `limit` of each per call, so one call
/// never blocks Redis for long; every claim runs it, so any host that claims
/// keeps the queue moving. A lease that runs out on the job's last allowed
/// attempt sends the job to the dead letters instead.
const HELPERS: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function job_key(prefix, id)
  return prefix .. ':job:' .. id
end
local function untag(prefix, key, id)
  local tag = redis.call('HGET', key, 'tag')
  if tag and tag ~= '' then
    redis.call('SREM', prefix .. ':tag:' .. tag, id)
  end
end
-- Counts an event of a job in the queue's stats and its tag's; a tag's
-- stats expire once the tag has been idle for a finished-job TTL.
local function count(prefix, key, field)
  redis.call('HINCRBY', prefix .. ':stats', field, 1)
  local f = redis.call('HMGET', key, 'tag', 'ttl_s')
  if f[1] and f[1] ~= '' then
    local stats = prefix .. ':stats:' .. f[1]
    redis.call('HINCRBY', stats, field, 1)
    redis.call('EXPIRE', stats, tonumber(f[2] or '86400'))
  end
end
local function finish(prefix, key, id, state, now)
  if state == 'done' then count(prefix, key, 'completed') else count(prefix, key, state) end
  untag(prefix, key, id)
  -- A done job keeps its owner: the host that acknowledged it.
  if state ~= 'done' then redis.call('HDEL', key, 'owner') end
  redis.call('HSET', key, 'state', state, 'finished_ms', now)
  redis.call('EXPIRE', key, tonumber(redis.call('HGET', key, 'ttl_s') or '86400'))
end
local function tick(prefix, ready, leased, delayed, dead, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed, id)
    local key = job_key(prefix, id)
    local rank = redis.call('HGET', key, 'rank')
    if rank then
      redis.call('ZADD', ready, 0, rank)
      redis.call('HSET', key, 'state', 'ready')
    end
  end
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', '(' .. now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    redis.call('ZREM', leased, id)
    local key = job_key(prefix, id)
    local f = redis.call('HMGET', key, 'rank', 'attempts', 'max_attempts', 'cancel')
    if f[1] then
      redis.call('HDEL', key, 'owner')
      count(prefix, key, 'expired')
      if f[4] == '1' then
        finish(prefix, key, id, 'cancelled', now)
      elseif tonumber(f[2]) >= tonumber(f[3]) then
        count(prefix, key, 'dead')
        untag(prefix, key, id)
        redis.call('ZADD', dead, now, id)
        redis.call('HSET', key, 'state', 'dead', 'last_error',
          'its lease ran out on its last allowed attempt (the host running it stopped renewing: it died, stalled or lost Redis)')
      else
        redis.call('ZADD', ready, 0, f[1])
        redis.call('HSET', key, 'state', 'ready', 'last_error',
          'its lease ran out (the host running it stopped renewing: it died, stalled or lost Redis)')
      end
    end
  end
  -- Jobs back in the ready set wake the other idle hosts (best effort).
  if #due > 0 or #expired > 0 then
    redis.call('PUBLISH', prefix .. ':events', 'ready')
  end
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{body}"))
}

/// Enqueues a job. KEYS: seq, ready, delayed. ARGV: prefix, kind, payload,
/// tag, priority, timeout_ms, max_attempts, delay_ms, ttl_s. Returns the
/// new id. A job ready at once is announced with `ready` on
/// `<prefix>:events`.
///
/// The rank is `tier (14 hex) . inverted priority (8 hex) . id (14 hex)`:
/// the base tier is `2^53`, a later promotion `n` would use `2^53 - n`.
pub(crate) fn enqueue() -> Script {
    script(
        r#"
local prefix = ARGV[1]
local id = redis.call('INCR', KEYS[1])
local priority = tonumber(ARGV[5])
local rank = string.format('%014x%08x%014x', 9007199254740992, 2147483647 - priority, id)
local now = now_ms()
local delay = tonumber(ARGV[8])
local state = 'ready'
if delay > 0 then state = 'delayed' end
redis.call('HSET', job_key(prefix, id),
  'kind', ARGV[2], 'payload', ARGV[3], 'tag', ARGV[4], 'priority', ARGV[5],
  'timeout_ms', ARGV[6], 'max_attempts', ARGV[7], 'attempts', 0, 'fence', 0,
  'rank', rank, 'state', state, 'enqueued_ms', now, 'ttl_s', ARGV[9])
if ARGV[4] ~= '' then
  redis.call('SADD', prefix .. ':tag:' .. ARGV[4], id)
end
count(prefix, job_key(prefix, id), 'enqueued')
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, id)
else
  redis.call('ZADD', KEYS[2], 0, rank)
  -- Wakes idle hosts at once; they poll too, so a lost message only delays.
  redis.call('PUBLISH', prefix .. ':events', 'ready')
end
return id
"#,
    )
}

/// The fence check every lease-holder script starts with: the job's fence
/// is the caller's and the job is still in the lease set.
const HOLDS: &str = r#"
local function holds(prefix, leased, id, fence)
  return redis.call('HGET', job_key(prefix, id), 'fence') == fence
    and redis.call('ZSCORE', leased, id) ~= false
end
"#;

fn fenced(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{HOLDS}\n{body}"))
}

/// Claims up to `count` of the best ready jobs, after the due-work step.
/// KEYS: ready, leased, delayed, dead. ARGV: prefix, lease_ms, owner, tick
/// limit, token, count. Returns `{{id, fence, attempt, kind, payload, tag,
/// priority, timeout_ms, max_attempts}, ...}` in queue order. A count of 0
/// only replays (below).
///
/// A claim whose reply is lost (the connection dropped, or the caller gave
/// up waiting) has still counted its jobs' attempts and leased them to
/// `owner`, which does not know it holds them; on its last attempt each
/// such job would go to the dead letters once its lease runs out, never
/// having run. So each claim that takes jobs records its `token` and the
/// `id:fence` pairs it leased in `<prefix>:claim:<owner>` (one key per
/// host, expiring with the lease), and a claim that comes again with the
/// same token gets the jobs of that record it still holds, leases renewed,
/// instead of new ones: the caller retries with one token until it hears
/// an answer, and so runs what it claimed.
pub(crate) fn claim() -> Script {
    fenced(
        r#"
local prefix, owner, token = ARGV[1], ARGV[3], ARGV[5]
local lease = tonumber(ARGV[2])
local now = now_ms()
local record = prefix .. ':claim:' .. owner
local function reply(key, id, fence, attempt)
  local f = redis.call('HMGET', key, 'kind', 'payload', 'tag', 'priority', 'timeout_ms', 'max_attempts')
  return {id, fence, attempt, f[1], f[2], f[3], f[4], f[5], f[6]}
end
local recorded = redis.call('GET', record)
if recorded and string.sub(recorded, 1, #token + 1) == token .. ' ' then
  local jobs = {}
  for id, fence in string.gmatch(string.sub(recorded, #token + 2), '(%d+):(%d+)') do
    if holds(prefix, KEYS[2], id, fence) then
      redis.call('ZADD', KEYS[2], 'XX', now + lease, id)
      local key = job_key(prefix, id)
      table.insert(jobs, reply(key, tonumber(id), tonumber(fence),
        tonumber(redis.call('HGET', key, 'attempts'))))
    end
  end
  return jobs
end
local want = tonumber(ARGV[6])
if want < 1 then return {} end
tick(prefix, KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[4]))
local jobs, leased, leases = {}, {}, {}
-- Numbers are written as decimal strings made once: Lua's own conversion
-- goes through a float format, which showed in profiles at high rates.
local expires = string.format('%d', now + lease)
-- All ranks score 0, so ZPOPMIN pops the first ones as byte strings: the
-- best jobs, in queue order. A rank whose job record is gone (it expired)
-- is dropped; popping again for the gap happens a bounded number of times.
for _ = 1, 4 do
  local popped = redis.call('ZPOPMIN', KEYS[1], want - #jobs)
  if #popped == 0 then break end
  for i = 1, #popped, 2 do
    local id = tonumber(string.sub(popped[i], 23), 16)
    local sid = string.format('%d', id)
    local key = job_key(prefix, sid)
    local f = redis.call('HMGET', key, 'kind', 'payload', 'tag', 'priority', 'timeout_ms',
      'max_attempts', 'attempts', 'fence', 'ttl_s')
    if f[1] then
      local attempt = tonumber(f[7] or '0') + 1
      local fence = tonumber(f[8] or '0') + 1
      local sfence = string.format('%d', fence)
      redis.call('HSET', key, 'attempts', string.format('%d', attempt), 'fence', sfence,
        'state', 'running', 'owner', owner)
      if f[3] and f[3] ~= '' then
        local stats = prefix .. ':stats:' .. f[3]
        redis.call('HINCRBY', stats, 'claimed', 1)
        redis.call('EXPIRE', stats, f[9] or '86400')
      end
      table.insert(leases, expires)
      table.insert(leases, sid)
      table.insert(jobs, {id, fence, attempt, f[1], f[2], f[3], f[4], f[5], f[6]})
      table.insert(leased, sid .. ':' .. sfence)
    end
  end
  if #jobs >= want then break end
end
if #jobs > 0 then
  redis.call('ZADD', KEYS[2], unpack(leases))
  redis.call('HINCRBY', prefix .. ':stats', 'claimed', string.format('%d', #jobs))
  redis.call('SET', record, token .. ' ' .. table.concat(leased, ','), 'PX', ARGV[2])
end
return jobs
"#,
    )
}

/// Runs the due-work step alone. KEYS: ready, leased, delayed, dead. ARGV:
/// prefix, tick limit.
pub(crate) fn maintain() -> Script {
    script(
        r#"
tick(ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], now_ms(), tonumber(ARGV[2]))
return 1
"#,
    )
}

/// Settles a batch of claimed jobs, each by its own fence: a stale entry is
/// refused alone and the others still apply. KEYS: leased, ready, delayed,
/// dead. ARGV: prefix, then six per entry: op (`a` ack, `f` fail, `r`
/// release), id, fence, reason, backoff_ms, final (`1`: dead at once).
/// Returns one word per entry, in order: `done` (acknowledged; the record
/// then expires), `retry` (to the delayed set with its backoff), `dead`,
/// `released` (back in its place, attempt not counted), `cancelled` (a
/// cancel was asked for: a failed or released job ends as cancelled), or
/// `stale`.
///
/// An ack reads three fields of its job's record and writes only what changes;
/// the queue's event counts are added once per call.
pub(crate) fn settle() -> Script {
    script(
        r#"
local prefix = ARGV[1]
local ready, leased, delayed, dead = KEYS[2], KEYS[1], KEYS[3], KEYS[4]
local now = now_ms()
-- Written as a decimal string made once (Lua's own conversion of a number
-- goes through a float format).
local now_s = string.format('%d', now)
local counts = {}
local function tally(tag, ttl, field)
  counts[field] = (counts[field] or 0) + 1
  if tag and tag ~= '' then
    local stats = prefix .. ':stats:' .. tag
    redis.call('HINCRBY', stats, field, 1)
    redis.call('EXPIRE', stats, ttl or '86400')
  end
end
local function ends(key, id, state, tag, ttl)
  tally(tag, ttl, state == 'done' and 'completed' or state)
  if tag and tag ~= '' then redis.call('SREM', prefix .. ':tag:' .. tag, id) end
  -- A done job keeps its owner: the host that acknowledged it.
  if state ~= 'done' then redis.call('HDEL', key, 'owner') end
  redis.call('HSET', key, 'state', state, 'finished_ms', now_s)
  redis.call('EXPIRE', key, ttl or '86400')
end
local out = {}
for i = 2, #ARGV, 6 do
  local op, id, fence = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = job_key(prefix, id)
  -- Acks, the common case, read only what they need.
  local f = redis.call('HMGET', key, 'fence', 'tag', 'ttl_s')
  local tag, ttl = f[2], f[3]
  -- Holding the job is its fence and its lease; the lease check is the
  -- ZREM that every outcome needs anyway (nothing else changes if it fails).
  if f[1] ~= fence or redis.call('ZREM', leased, id) == 0 then
    table.insert(out, 'stale')
  elseif op == 'a' then
    ends(key, id, 'done', tag, ttl)
    table.insert(out, 'done')
  elseif op == 'f' then
    f = redis.call('HMGET', key, 'cancel', 'attempts', 'max_attempts')
    redis.call('HDEL', key, 'owner')
    tally(tag, ttl, 'failed')
    local reason = ARGV[i + 3]
    if f[1] == '1' then
      redis.call('HSET', key, 'last_error', reason)
      ends(key, id, 'cancelled', tag, ttl)
      table.insert(out, 'cancelled')
    elseif ARGV[i + 5] == '1' or tonumber(f[2]) >= tonumber(f[3]) then
      tally(tag, ttl, 'dead')
      if tag and tag ~= '' then redis.call('SREM', prefix .. ':tag:' .. tag, id) end
      redis.call('ZADD', dead, now_s, id)
      redis.call('HSET', key, 'state', 'dead', 'last_error', reason)
      table.insert(out, 'dead')
    else
      redis.call('ZADD', delayed, now + tonumber(ARGV[i + 4]), id)
      redis.call('HSET', key, 'state', 'delayed', 'last_error', reason)
      table.insert(out, 'retry')
    end
  else
    f = redis.call('HMGET', key, 'cancel', 'attempts', 'rank')
    if f[1] == '1' then
      ends(key, id, 'cancelled', tag, ttl)
      table.insert(out, 'cancelled')
    else
      redis.call('HDEL', key, 'owner')
      tally(tag, ttl, 'released')
      redis.call('HSET', key, 'attempts', tonumber(f[2]) - 1, 'state', 'ready')
      redis.call('ZADD', ready, 0, f[3])
      table.insert(out, 'released')
    end
  end
end
for field, n in pairs(counts) do
  redis.call('HINCRBY', prefix .. ':stats', field, string.format('%d', n))
end
return out
"#,
    )
}

/// Extends leases. KEYS: leased. ARGV: prefix, lease_ms, then id, fence
/// pairs. Returns `{lost {id, fence} pairs, {id, fence} pairs asked to
/// cancel}`: with their fences, so that a host holding two attempts of one
/// job (an old one whose lease ran out, and its new claim) stops only the
/// one that lost.
pub(crate) fn renew() -> Script {
    fenced(
        r#"
local prefix = ARGV[1]
local until_ms = now_ms() + tonumber(ARGV[2])
local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if holds(prefix, KEYS[1], id, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, id)
    if redis.call('HGET', job_key(prefix, id), 'cancel') == '1' then
      table.insert(cancel, {id, ARGV[i + 1]})
    end
  else
    table.insert(lost, {id, ARGV[i + 1]})
  end
end
return {lost, cancel}
"#,
    )
}

/// Re-enqueues a dead job at its rank, attempts reset, and announces it with
/// `ready` on `<prefix>:events`, as an enqueue does. KEYS: dead, ready.
/// ARGV: prefix, id. Returns 1, or 0 if the job is not a dead letter.
pub(crate) fn retry_dead() -> Script {
    script(
        r#"
local prefix, id = ARGV[1], ARGV[2]
if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
local key = job_key(prefix, id)
local rank = redis.call('HGET', key, 'rank')
if not rank then return 0 end
redis.call('HSET', key, 'attempts', 0, 'state', 'ready')
redis.call('ZADD', KEYS[2], 0, rank)
local tag = redis.call('HGET', key, 'tag')
if tag and tag ~= '' then
  redis.call('SADD', prefix .. ':tag:' .. tag, id)
end
redis.call('PUBLISH', prefix .. ':events', 'ready')
return 1
"#,
    )
}

/// Cancels up to `batch` of a tag's unfinished jobs: ready and delayed ones
/// end as cancelled at once, running ones are flagged for their host (which
/// learns it from `cancel:<id>` on `<prefix>:events`, or else on its next
/// renewal). KEYS: ready, delayed. ARGV: prefix, tag,
/// batch. Returns `{jobs cancelled or flagged, jobs of the tag left}`.
pub(crate) fn cancel_tag() -> Script {
    script(
        r#"
local prefix = ARGV[1]
local tagkey = prefix .. ':tag:' .. ARGV[2]
local ids = redis.call('SPOP', tagkey, tonumber(ARGV[3]))
local now = now_ms()
local n = 0
for _, id in ipairs(ids) do
  local key = job_key(prefix, id)
  local f = redis.call('HMGET', key, 'state', 'rank')
  if f[1] == 'ready' then
    redis.call('ZREM', KEYS[1], f[2])
    finish(prefix, key, id, 'cancelled', now)
    n = n + 1
  elseif f[1] == 'delayed' then
    redis.call('ZREM', KEYS[2], id)
    finish(prefix, key, id, 'cancelled', now)
    n = n + 1
  elseif f[1] == 'running' then
    redis.call('HSET', key, 'cancel', 1)
    -- Tells the job's host at once; its next renewal reports it too, so a
    -- lost message only delays the stop.
    redis.call('PUBLISH', prefix .. ':events', 'cancel:' .. id)
    n = n + 1
  end
end
return {n, redis.call('SCARD', tagkey)}
"#,
    )
}

/// Moves up to about `batch` of a tag's ready and delayed jobs into
/// promotion tier `n` (rank prefix `2^53 - n`), keeping the rest of their
/// rank. KEYS: ready. ARGV: prefix, tag, n, SSCAN cursor, batch. Returns
/// `{next cursor, jobs moved}`; a job seen twice by SSCAN is moved once.
pub(crate) fn promote() -> Script {
    script(
        r#"
local prefix = ARGV[1]
local tier = string.format('%014x', 9007199254740992 - tonumber(ARGV[3]))
local scan = redis.call('SSCAN', prefix .. ':tag:' .. ARGV[2], ARGV[4], 'COUNT', tonumber(ARGV[5]))
local moved = 0
for _, id in ipairs(scan[2]) do
  local key = job_key(prefix, id)
  local f = redis.call('HMGET', key, 'state', 'rank')
  if f[2] and (f[1] == 'ready' or f[1] == 'delayed') then
    local rank = tier .. string.sub(f[2], 15)
    if rank ~= f[2] then
      if f[1] == 'ready' then
        redis.call('ZREM', KEYS[1], f[2])
        redis.call('ZADD', KEYS[1], 0, rank)
      end
      redis.call('HSET', key, 'rank', rank)
      moved = moved + 1
    end
  end
end
return {scan[1], moved}
"#,
    )
}

/// Counts a tag's unfinished jobs by state, from its index set. KEYS: none.
/// ARGV: prefix, tag, SSCAN cursor, batch. Returns `{next cursor, ready,
/// delayed, running}`. A tag with at most `batch` jobs is read whole
/// (`SMEMBERS`), so its counts are one instant's; a larger one is scanned
/// a batch per call.
pub(crate) fn tag_counts() -> Script {
    script(
        r#"
local prefix = ARGV[1]
local tagkey = prefix .. ':tag:' .. ARGV[2]
local batch = tonumber(ARGV[4])
local next_cursor, ids = '0', nil
if ARGV[3] == '0' and redis.call('SCARD', tagkey) <= batch then
  ids = redis.call('SMEMBERS', tagkey)
else
  local scan = redis.call('SSCAN', tagkey, ARGV[3], 'COUNT', batch)
  next_cursor, ids = scan[1], scan[2]
end
local ready, delayed, running = 0, 0, 0
for _, id in ipairs(ids) do
  local state = redis.call('HGET', job_key(prefix, id), 'state')
  if state == 'ready' then ready = ready + 1
  elseif state == 'delayed' then delayed = delayed + 1
  elseif state == 'running' then running = running + 1
  end
end
return {next_cursor, ready, delayed, running}
"#,
    )
}
