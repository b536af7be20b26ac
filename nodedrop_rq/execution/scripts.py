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

# KEYS: execution hash, counters hash of its queue, active index of its queue, RQ's failed registry of it.
# ARGV: now (ISO), worker, token, state TTL, execution id, events channel, retries per round,
#       completion TTL, now (epoch seconds), failure TTL, when the RQ job was last enqueued (epoch seconds,
#       '' unknown).
# Returns {outcome, status, attempt, maxAttempts, attemptBase, requeued} where outcome is
# started | skip | cancelled | missing.
START = _HELPERS + """
local h = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'maxAttempts', 'cancelRequested', 'attemptBase',
  'nextRetryAt')
local status = h[1]
if not status then return {'missing', '', 0, 0, 0, 0} end
local attempt = tonumber(h[2]) or 0
local max = tonumber(h[3]) or 0
local base = tonumber(h[5]) or 0
local requeued = 0
if status == 'running' and redis.call('HGET', KEYS[1], 'token') == ARGV[3] then
  -- This start again (redis-py re-sent the pipeline after a lost reply): the attempt is ours, run it.
  return {'started', 'running', attempt, max, base, 0}
end
if status == 'failed' and redis.call('ZSCORE', KEYS[4], ARGV[5]) then
  -- Still in RQ's failed registry: a leftover delivery, not a requeue (RQ's requeue removes it first).
  return {'skip', status, attempt, max, base, 0}
end
if status == 'failed' then
  base = attempt
  max = attempt + 1 + tonumber(ARGV[7])
  requeued = 1
  redis.call('HSET', KEYS[1], 'maxAttempts', max, 'attemptBase', base, 'finishedAt', '', 'error', 'null')
  redis.call('HDEL', KEYS[1], 'cancelRequested')
  redis.call('HINCRBY', KEYS[1], 'requeues', 1)
  redis.call('ZADD', KEYS[3], ARGV[9], ARGV[5])
  h[4] = false
elseif status ~= 'queued' and status ~= 'retrying' then
  return {'skip', status, attempt, max, base, 0}
end
-- The start ends the execution instead of beginning an attempt: status, TTL, index, counter, event together.
local function end_here(final, counter, ttl)
  redis.call('HSET', KEYS[1], 'status', final, 'finishedAt', ARGV[1], 'nextRetryAt', '', 'currentNode', '')
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
if status == 'retrying' then ready = iso_epoch(h[6]) end
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
redis.call('HSET', KEYS[1], 'status', 'running', 'attempt', n, 'startedAt', ARGV[1], 'nextRetryAt', '',
  'currentNode', '', 'nodes', '{}', 'token', ARGV[3], 'attempt:' .. n, cjson.encode({attempt = n,
  startedAt = ARGV[1], finishedAt = cjson.null, status = 'running', error = cjson.null, worker = ARGV[2]}))
redis.call('EXPIRE', KEYS[1], ARGV[4])
nd_index_status(KEYS[1], ARGV[5], status, 'running')
nd_emit(ARGV[6], KEYS[1], cjson.encode({type = 'started', executionId = ARGV[5], timestamp = ARGV[1],
  attempt = n}))
nd_log_ttl(KEYS[1])
return {'started', 'running', n, max, base, requeued}
"""

# KEYS: execution hash, counters hash of its queue, active index of its queue.
# ARGV: 1 allowed source statuses (comma separated), 2 expected attempt ('' any), 3 expected token
#       ('' unchecked), 4 target status, 5 TTL, 6 JSON object of fields to set (string values),
#       7 JSON patch of the current attempt's record ('' none), 8 counter field ('' none), 9 duration in
#       seconds ('' none), 10 duration bucket field, 11 events channel, 12 active index: add | remove | '',
#       13 execution id, 14 score for the active index, 15.. messages to publish once applied.
# Returns {1, target} when applied, {2, target} when this fenced writer's write had applied already,
# {0, current status, current attempt} when refused.
TRANSITION = _HELPERS + """
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
  if ARGV[3] ~= '' and status == ARGV[4] and h[3] == ARGV[3] and tostring(h[2]) == ARGV[2] then
    return {2, status}
  end
  return {0, status, tonumber(h[2]) or 0}
end
local flat = {'status', ARGV[4]}
for k, v in pairs(cjson.decode(ARGV[6])) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
if ARGV[7] ~= '' and (tonumber(h[2]) or 0) > 0 then
  local field = 'attempt:' .. h[2]
  local raw = redis.call('HGET', KEYS[1], field)
  local record = raw and cjson.decode(raw) or {attempt = tonumber(h[2])}
  for k, v in pairs(cjson.decode(ARGV[7])) do record[k] = v end
  flat[#flat + 1] = field
  flat[#flat + 1] = cjson.encode(record)
end
redis.call('HSET', KEYS[1], unpack(flat))
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[8], 1) end
if ARGV[9] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'duration_count', 1)
  redis.call('HINCRBYFLOAT', KEYS[2], 'duration_sum', ARGV[9])
  redis.call('HINCRBY', KEYS[2], ARGV[10], 1)
end
if ARGV[12] == 'add' then redis.call('ZADD', KEYS[3], ARGV[14], ARGV[13]) end
if ARGV[12] == 'remove' then redis.call('ZREM', KEYS[3], ARGV[13]) end
nd_index_status(KEYS[1], ARGV[13], status, ARGV[4])
for i = 15, #ARGV do nd_emit(ARGV[11], KEYS[1], ARGV[i]) end
if #ARGV >= 15 then nd_log_ttl(KEYS[1]) end
return {1, ARGV[4]}
"""

# Node progress of the running attempt. KEYS: execution hash. ARGV: token, nodes JSON, current node,
# events channel, messages to publish... Returns the cancel flag, or false when the attempt is not the
# execution's running one (nothing written).
PROGRESS = _HELPERS + """
local h = redis.call('HMGET', KEYS[1], 'status', 'token', 'cancelRequested')
if h[1] ~= 'running' or h[2] ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'nodes', ARGV[2], 'currentNode', ARGV[3])
for i = 5, #ARGV do nd_emit(ARGV[4], KEYS[1], ARGV[i]) end
if #ARGV >= 5 then nd_log_ttl(KEYS[1]) end
return h[3]
"""
