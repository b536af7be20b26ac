"""The Lua scripts that change an execution's status. Each one checks, in the same atomic step as its
writes, that the execution is in a status the transition may start from (and, for an attempt's outcome,
that the attempt and its fencing token are the ones reporting), and otherwise writes nothing.
Counters and events move only inside a transition that applied.

Scripts are sent with EVAL inside pipelines (after a Redis restart the script cache is empty, and a
NOSCRIPT inside a MULTI would fail that command alone) and with EVALSHA otherwise (redis-py's Script).
"""

from __future__ import annotations

from nodedrop_rq import keys
from nodedrop_rq.counters import WAIT_BUCKET_PREFIX, WAIT_BUCKETS, WAIT_SUM, bucket_field

# -- search indexes and event log (nodedrop_rq/search.py, nodedrop_rq/event_log.py) --------------------
# Prepended to each script below: the status indexes move, and each published event is appended to the
# execution's event log, in the same atomic step as the status write, so neither can disagree with it.
# Key names come from keys.py; the scripts derive them from the execution hash's key and the id.
_HELPERS = f"""
local function nd_index_status(execution_key, execution_id, old, new)
  if old == new then return end
  -- Scored by creation time, which the old status's index holds (an unindexed execution stays so).
  local score = redis.call('ZSCORE', '{keys.search_status("")}' .. old, execution_id)
  if not score then return end
  redis.call('ZREM', '{keys.search_status("")}' .. old, execution_id)
  redis.call('ZADD', '{keys.search_status("")}' .. new, score, execution_id)
  local workflow = redis.call('HGET', execution_key, 'workflowId')
  if workflow and workflow ~= '' then
    redis.call('ZREM', '{keys.SEARCH_WORKFLOW_STATUS}' .. old .. ':' .. workflow, execution_id)
    redis.call('ZADD', '{keys.SEARCH_WORKFLOW_STATUS}' .. new .. ':' .. workflow, score, execution_id)
  end
end
local function nd_event_log(execution_key)
  return '{keys.execution_events("")}' .. string.sub(execution_key, {len(keys.execution("")) + 1})
end
local function nd_emit(channel, execution_key, message)
  redis.call('PUBLISH', channel, message)
  redis.call('XADD', nd_event_log(execution_key), 'MAXLEN', '~', {keys.EVENT_LOG_MAX_ENTRIES}, '*', 'e', message)
end
-- The log lives as long as the state while the execution is active, a short while after it ended.
local function nd_log_ttl(execution_key)
  local current = redis.call('HGET', execution_key, 'status')
  local ttl = redis.call('TTL', execution_key)
  if current == 'succeeded' or current == 'failed' or current == 'cancelled' or ttl < 0 then
    ttl = {keys.EVENT_LOG_TERMINAL_TTL}
  end
  redis.call('EXPIRE', nd_event_log(execution_key), ttl)
end
"""
# The queue wait histogram is observed here, by the start that applied, rather than served by the workers
# (prometheus-client's multiprocess mode): workers are forked horses and short-lived pods, every pod would
# need scraping and a shared directory, and an observation would vanish with its pod. In the counters hash
# the histogram moves atomically with the start (a re-sent start observes nothing twice), survives worker
# deaths, and the exporter, the one process Prometheus scrapes, reads it in the round trip it already makes.
# Cost: two hash increments (the bucket and the sum; the count is the buckets' total) inside this script,
# no extra round trip (docs/performance.md).
_WAIT_BOUNDS = ", ".join(f"{{{upper!r}, '{bucket_field(upper, WAIT_BUCKET_PREFIX)}'}}" for upper in WAIT_BUCKETS)

# Values longer than this are stored in pieces of this size (``name``, ``name#1``, ``name#2`` ...), and an
# empty value is an absent field: Redis then keeps the hash in its compact listpack encoding (every value
# at most ``hash-max-listpack-value``, 64 by default), a third of the size of its hashtable encoding.
# ``nodedrop_rq.state`` reads and writes the same layout.
CHUNK = 64

# Shared by the scripts: write (or, when empty, delete) a field in pieces, and read one back whole.
_FIELDS = """
local function put(key, name, value)
  local n = 0
  value = tostring(value)
  for i = 1, #value, CHUNK do
    redis.call('HSET', key, n == 0 and name or (name .. '#' .. n), string.sub(value, i, i + CHUNK - 1))
    n = n + 1
  end
  if n == 0 then redis.call('HDEL', key, name) n = 1 end
  while redis.call('HDEL', key, name .. '#' .. n) == 1 do n = n + 1 end
end
local function get(key, name)
  local first = redis.call('HGET', key, name)
  if not first then return false end
  local parts, n = {first}, 1
  while true do
    local part = redis.call('HGET', key, name .. '#' .. n)
    if not part then break end
    parts[#parts + 1] = part
    n = n + 1
  end
  return table.concat(parts)
end
""".replace("CHUNK", str(CHUNK))

# KEYS: execution hash, counters hash of its queue, active index of its queue, RQ's failed registry of it.
# ARGV: now (ISO), worker, token, state TTL, execution id, events channel, retries per round,
#       completion TTL, now (epoch seconds), failure TTL, when the RQ job was last enqueued (epoch seconds,
#       '' unknown).
# Returns {outcome, status, attempt, maxAttempts, attemptBase, requeued, workflow, input} where outcome is
# started | skip | cancelled | missing; workflow (the document's digest) and input only when started.
START = _FIELDS + _HELPERS + """
local h = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'maxAttempts', 'cancelRequested', 'attemptBase',
  'nextRetryAt')
local status = h[1]
if not status then return {'missing', '', 0, 0, 0, 0} end
-- Times are stored as Unix milliseconds (nodedrop_rq.state reads them back as ISO 8601).
local now_ms = string.format('%d', math.floor(tonumber(ARGV[9]) * 1000))
local function begun(n, max, base, requeued)
  return {'started', 'running', n, max, base, requeued, redis.call('HGET', KEYS[1], 'workflow') or '',
    get(KEYS[1], 'input') or ''}
end
local attempt = tonumber(h[2]) or 0
local max = tonumber(h[3]) or 0
local base = tonumber(h[5]) or 0
local requeued = 0
if status == 'running' and redis.call('HGET', KEYS[1], 'token') == ARGV[3] then
  -- This start again (redis-py re-sent the pipeline after a lost reply): the attempt is ours, run it.
  return begun(attempt, max, base, 0)
end
if status == 'failed' and redis.call('ZSCORE', KEYS[4], ARGV[5]) then
  -- Still in RQ's failed registry: a leftover delivery, not a requeue (RQ's requeue removes it first).
  return {'skip', status, attempt, max, base, 0}
end
if status == 'failed' then
  base = attempt
  max = attempt + 1 + tonumber(ARGV[7])
  requeued = 1
  redis.call('HSET', KEYS[1], 'maxAttempts', max, 'attemptBase', base)
  redis.call('HDEL', KEYS[1], 'cancelRequested', 'finishedAt')
  put(KEYS[1], 'error', '')
  put(KEYS[1], 'excString', '')
  redis.call('HINCRBY', KEYS[1], 'requeues', 1)
  redis.call('ZADD', KEYS[3], ARGV[9], ARGV[5])
  h[4] = false
elseif status ~= 'queued' and status ~= 'retrying' then
  return {'skip', status, attempt, max, base, 0}
end
-- The start ends the execution instead of beginning an attempt: status, TTL, index, counter, event together.
local function end_here(final, counter, ttl)
  redis.call('HSET', KEYS[1], 'status', final, 'finishedAt', now_ms)
  redis.call('HDEL', KEYS[1], 'nextRetryAt', 'currentNode')
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('HINCRBY', KEYS[2], counter, 1)
  nd_index_status(KEYS[1], ARGV[5], status, final)
  nd_emit(ARGV[6], KEYS[1], cjson.encode({type = final, executionId = ARGV[5], timestamp = ARGV[1],
    attempt = attempt}))
  nd_log_ttl(KEYS[1])
end
if h[4] == '1' then
  end_here('cancelled', 'cancelled', ARGV[8])
  return {'cancelled', 'cancelled', attempt, max, base, requeued}
end
if attempt >= max then
  -- Delivered again with no attempt left (an attempt cut off before it began was its last): it failed.
  end_here('failed', 'failed', ARGV[10])
  return {'skip', 'failed', attempt, max, base, requeued}
end
-- Queue wait: a retry waited from its due time (nextRetryAt, written by the failed attempt; RQ's scheduler
-- moves it a moment later and would hide its own lag), anything else from its last enqueue (a submit, an
-- RQ requeue, a redelivery).
local function iso_epoch(text)
  local y, mo, d, hh, mi, ss = string.match(text or '', '^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d%.]+)Z$')
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  -- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + d - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mi) * 60 + tonumber(ss)
end
local ready = nil
-- (nextRetryAt is stored as Unix ms; a state written before that holds ISO text.)
if status == 'retrying' then ready = h[6] and tonumber(h[6]) and tonumber(h[6]) / 1000 or iso_epoch(h[6]) end
if not ready then ready = tonumber(ARGV[11]) end
if ready then
  local wait = math.max(tonumber(ARGV[9]) - ready, 0)
  local field = '""" + bucket_field(float("inf"), WAIT_BUCKET_PREFIX) + """'
  for _, bound in ipairs({""" + _WAIT_BOUNDS + """}) do
    if wait <= bound[1] then field = bound[2] break end
  end
  redis.call('HINCRBYFLOAT', KEYS[2], '""" + WAIT_SUM + """', wait)
  redis.call('HINCRBY', KEYS[2], field, 1)
end
local n = attempt + 1
redis.call('HSET', KEYS[1], 'status', 'running', 'attempt', n, 'startedAt', now_ms, 'token', ARGV[3])
redis.call('HDEL', KEYS[1], 'nextRetryAt', 'currentNode')
put(KEYS[1], 'nodes', '')
-- The attempt's record: its start as ms after the execution's creation (r), or as Unix ms (s) in a state
-- created before times were stored so; its worker only when it is not the previous attempt's.
local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '')
local record = {st = 'running', w = ARGV[2]}
if created then record.r = tonumber(now_ms) - created else record.s = tonumber(now_ms) end
for earlier = n - 1, 1, -1 do
  local raw = get(KEYS[1], 'attempt:' .. earlier)
  local previous = raw and cjson.decode(raw)
  if type(previous) == 'table' and previous.w then
    if previous.w == ARGV[2] then record.w = nil end
    break
  end
end
put(KEYS[1], 'attempt:' .. n, cjson.encode(record))
redis.call('EXPIRE', KEYS[1], ARGV[4])
nd_index_status(KEYS[1], ARGV[5], status, 'running')
nd_emit(ARGV[6], KEYS[1], cjson.encode({type = 'started', executionId = ARGV[5], timestamp = ARGV[1],
  attempt = n}))
nd_log_ttl(KEYS[1])
return begun(n, max, base, requeued)
"""

# KEYS: execution hash, counters hash of its queue, active index of its queue, and (optional) the workflow
# document the execution runs, whose TTL is raised to ARGV[15] (never lowered) when the transition applies.
# ARGV: 1 allowed source statuses (comma separated), 2 expected attempt ('' any), 3 expected token
#       ('' unchecked), 4 target status, 5 TTL, 6 JSON object of fields to set (string values),
#       7 JSON patch of the current attempt's record ('' none), 8 counter field ('' none), 9 duration in
#       seconds ('' none), 10 duration bucket field, 11 events channel, 12 active index: add | remove | '',
#       13 execution id, 14 score for the active index, 15 TTL the workflow document needs from now ('' none),
#       16.. messages to publish once applied. Fields with an empty value are deleted.
# Returns {1, target} when applied, {2, target} when this fenced writer's write had applied already,
# {0, current status, current attempt} when refused.
TRANSITION = _FIELDS + _HELPERS + """
local h = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'token')
local status = h[1]
if not status then return {0, '', 0} end
local ok = false
for source in string.gmatch(ARGV[1], '[^,]+') do
  if source == status then ok = true end
end
if ok and ARGV[2] ~= '' and tostring(h[2]) ~= ARGV[2] then ok = false end
if ok and ARGV[3] ~= '' and h[3] ~= ARGV[3] then ok = false end
if not ok then
  -- The same writer again (redis-py re-sends a script whose reply was lost): it applied the first time.
  -- (A finished execution keeps no token: the attempt number alone is its writer's.)
  local terminal = status == 'succeeded' or status == 'failed' or status == 'cancelled'
  if ARGV[3] ~= '' and status == ARGV[4] and (h[3] == ARGV[3] or (terminal and not h[3]))
      and tostring(h[2]) == ARGV[2] then
    return {2, status}
  end
  return {0, status, tonumber(h[2]) or 0}
end
redis.call('HSET', KEYS[1], 'status', ARGV[4])
if ARGV[4] == 'succeeded' or ARGV[4] == 'failed' or ARGV[4] == 'cancelled' then
  redis.call('HDEL', KEYS[1], 'token')  -- only a running attempt needs its fence
end
for k, v in pairs(cjson.decode(ARGV[6])) do put(KEYS[1], k, v) end
if ARGV[7] ~= '' and (tonumber(h[2]) or 0) > 0 then
  local field = 'attempt:' .. h[2]
  local raw = get(KEYS[1], field)
  local record = raw and cjson.decode(raw) or {}
  for k, v in pairs(cjson.decode(ARGV[7])) do record[k] = v end
  -- The end as milliseconds after the start (d), and a failure's status as its error alone.
  local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '')
  local start = type(record.s) == 'number' and record.s or (type(record.r) == 'number' and created and
    created + record.r)
  if start and type(record.f) == 'number' then record.d = record.f - start record.f = nil end
  if record.st == 'failed' and type(record.e) == 'table' then record.st = nil end
  -- An error that repeats the previous attempt's is stored as 1 ("as before").
  if type(record.e) == 'table' then
    for earlier = tonumber(h[2]) - 1, 1, -1 do
      local raw = get(KEYS[1], 'attempt:' .. earlier)
      local previous = raw and cjson.decode(raw)
      if type(previous) ~= 'table' or previous.e ~= 1 then
        local e = type(previous) == 'table' and previous.e
        if type(e) == 'table' and e.m == record.e.m and e.k == record.e.k and e.n == record.e.n then record.e = 1 end
        break
      end
    end
  end
  put(KEYS[1], field, cjson.encode(record))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
if KEYS[4] and ARGV[15] ~= '' then
  local left = redis.call('TTL', KEYS[4])
  if left >= 0 and left < tonumber(ARGV[15]) then redis.call('EXPIRE', KEYS[4], ARGV[15]) end
end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[8], 1) end
if ARGV[9] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'duration_count', 1)
  redis.call('HINCRBYFLOAT', KEYS[2], 'duration_sum', ARGV[9])
  redis.call('HINCRBY', KEYS[2], ARGV[10], 1)
end
if ARGV[12] == 'add' then redis.call('ZADD', KEYS[3], ARGV[14], ARGV[13]) end
if ARGV[12] == 'remove' then redis.call('ZREM', KEYS[3], ARGV[13]) end
nd_index_status(KEYS[1], ARGV[13], status, ARGV[4])
for i = 16, #ARGV do nd_emit(ARGV[11], KEYS[1], ARGV[i]) end
if #ARGV >= 16 then nd_log_ttl(KEYS[1]) end
return {1, ARGV[4]}
"""

# Node progress of the running attempt. KEYS: execution hash. ARGV: token, nodes JSON, current node,
# events channel, messages to publish... Returns the cancel flag, or false when the attempt is not the
# execution's running one (nothing written).
PROGRESS = _FIELDS + _HELPERS + """
local h = redis.call('HMGET', KEYS[1], 'status', 'token', 'cancelRequested')
if h[1] ~= 'running' or h[2] ~= ARGV[1] then return false end
put(KEYS[1], 'nodes', ARGV[2])
put(KEYS[1], 'currentNode', ARGV[3])
for i = 5, #ARGV do nd_emit(ARGV[4], KEYS[1], ARGV[i]) end
if #ARGV >= 5 then nd_log_ttl(KEYS[1]) end
return h[3]
"""

# A workflow document, stored once under its digest. KEYS: the document's key. ARGV: its canonical JSON,
# the TTL the execution being submitted needs it for. Sets it if absent; otherwise raises its TTL to that,
# never lowers it (other executions may need it longer). Returns 1 when it was stored now.
KEEP_DOCUMENT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
local left = redis.call('TTL', KEYS[1])
if left >= 0 and left < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# One field of an execution, in pieces (see CHUNK), if the execution exists. KEYS: its hash. ARGV: field, value.
PUT_FIELD = _FIELDS + """
if redis.call('EXISTS', KEYS[1]) == 1 then put(KEYS[1], ARGV[1], ARGV[2]) end
"""
