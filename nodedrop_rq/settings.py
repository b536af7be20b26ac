"""The one settings object, built from environment variables at process start.

No other module reads ``os.environ``: they receive a :class:`Settings` (or call :func:`get_settings`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and the value."""


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_DEFAULT_PORT = 26379
# Query parameters a Sentinel URL may carry; anything else is a typo that would silently do nothing.
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password", "ssl_ca_certs", "ssl_cert_reqs")


@dataclass(frozen=True)
class SentinelTarget:
    """A ``redis+sentinel://`` REDIS_URL, parsed: where the sentinels are and which master they name.

    ``username``/``password`` (the URL's userinfo) authenticate to the master and replicas;
    ``sentinel_username``/``sentinel_password`` (query parameters) to the sentinels, which often have
    their own (or no) password."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str | None = None


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    # False when REDIS_URL was not set: the demo then starts its own redis-server.
    redis_url_given: bool = False
    # Worker processes one `nodedrop-rq worker` container runs (= concurrent executions it takes).
    worker_concurrency: int = 5
    state_ttl: int = 86400
    completion_ttl: int = 3600
    queue: str = "executions"
    retry_intervals: tuple[int, ...] = (2, 4, 8)
    job_timeout: int = 900
    # supervised: in long-lived worker processes watched by a supervisor (the pool, or one the worker
    #   starts under plain `rq worker`), which fails a dead process's attempt at once, kills one that
    #   overruns the job timeout and recycles processes; no fork per execution.
    # fork: each execution in a forked process (RQ's Worker): a fresh process per execution, 8x slower.
    # inline: in the worker process itself with no supervisor of its own under plain `rq worker` (under
    #   `nodedrop-rq worker` the pool supervises it, as for supervised).
    isolation: str = "supervised"
    # A worker process is replaced by a fresh one after this many executions (0 = never), or when its
    # resident memory passes this many MB after an execution (0 = no ceiling): leaks stay bounded.
    worker_max_jobs: int = 10_000
    worker_max_memory_mb: int = 512
    # Seconds past the job timeout after which the supervisor kills a process whose execution did not
    # stop by itself (a node blocked in C code, where the in-process timeout cannot reach it).
    timeout_kill_grace: int = 5
    # Memory one execution may allocate (RLIMIT_DATA of the horse, or of the inline worker); 0 = no limit.
    memory_limit_mb: int = 1024
    # Failed executions wait here for manual review (RQ's FailedJobRegistry TTL).
    failure_ttl: int = 30 * 86400
    # RQ's defaults (420 s / 600 s / 30 s) take 90 s to 13 min to notice a SIGKILLed worker;
    # these keep recovery of an abandoned execution under 30 s.
    worker_ttl: int = 20
    maintenance_interval: int = 5
    job_monitoring_interval: int = 5
    # Seconds of missed heartbeats after which a running execution counts as abandoned.
    heartbeat_grace: int = 10
    api_token: str | None = field(default=None, repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    exporter_host: str = "0.0.0.0"
    exporter_port: int = 9727
    # `nodedrop-rq worker`'s health/metrics port (/healthz, /healthz/readiness, /metrics); 0 = none.
    worker_health_host: str = "0.0.0.0"
    worker_health_port: int = 0
    # The queue wait nodedrop_workers_desired aims to keep executions under (seconds).
    target_wait_seconds: float = 5.0
    max_body_bytes: int = 1_048_576
    # Seconds a request body may take to arrive in full: a client that declares more than it sends (or
    # trickles it) gets a 408 instead of holding the request open forever.
    api_body_timeout: int = 10
    # GET /api/executions/{id}/events: seconds one event stream may stay open (the client reconnects with
    # Last-Event-ID and misses nothing), seconds between heartbeat comments, streams open at once per process.
    sse_max_seconds: int = 1800
    sse_heartbeat: int = 15
    sse_max_connections: int = 200
    # /webhook/...: seconds a `responseMode: lastNode` call waits for its execution to end (NodeDrop's is 30).
    webhook_wait_seconds: float = 30.0
    # Workflow limits, enforced at validation (submit time).
    max_nodes: int = 500
    max_input_items: int = 10_000
    max_expression_length: int = 2_000
    max_document_bytes: int = 1_048_576
    # Nesting of the workflow and input JSON; deeper documents would exhaust recursion in any reader.
    max_depth: int = 64
    max_delay_seconds: float = 300.0
    max_response_bytes: int = 10 * 1024 * 1024
    # http-request nodes may not reach loopback/private addresses unless the operator allows it.
    http_allow_private_network: bool = False
    # CIDRs of non-public networks that http-request nodes may reach (the SSRF allow-list).
    http_allowed_networks: tuple[str, ...] = ()
    # The JavaScript sandbox (expressions, Code nodes): milliseconds one expression may run, heap and
    # stack of a worker's JS context, and the cap on a Code node's own `timeout` parameter.
    js_time_limit_ms: int = 5_000
    js_memory_limit_mb: int = 64
    js_stack_limit_kb: int = 512
    code_max_timeout_ms: int = 30_000
    log_level: str = "INFO"
    # Modules imported by workers at start; they register Python callables for `function` nodes.
    function_modules: tuple[str, ...] = ()
    # `nodedrop-rq scheduler`: seconds between checks for due schedules, and the lease of the lock that
    # lets one scheduler fire at a time (a standby takes over within lock TTL + interval of a crash).
    scheduler_interval: int = 1
    scheduler_lock_ttl: int = 5
    # Queues on other Redis servers than REDIS_URL's (queue -> URL); see nodedrop_rq/routing.py.
    queue_redis_urls: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Sharded queues: a name submits go to -> the queues a hash of the workflow id picks from.
    queue_shards: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @cached_property
    def redis_sentinel(self) -> SentinelTarget | None:
        """The parsed Sentinel URL when ``redis_url`` names Sentinel, else None. Derived from
        ``redis_url`` (not a field) so that ``with_overrides(redis_url=...)`` cannot leave it stale."""
        if urlsplit(self.redis_url).scheme not in SENTINEL_SCHEMES:
            return None
        return parse_sentinel_url(self.redis_url)

    @property
    def max_attempts(self) -> int:
        return len(self.retry_intervals) + 1

    @property
    def worker_heartbeat_max_age(self) -> int:
        """A worker whose last heartbeat is older than this is dead: idle workers beat every
        ``worker_ttl - 15`` s (RQ's dequeue timeout), busy ones every monitoring interval."""
        return max(self.worker_ttl - 15, self.job_monitoring_interval) + self.heartbeat_grace

    @property
    def heartbeat_ttl(self) -> int:
        return self.job_monitoring_interval + self.heartbeat_grace

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _with_secret_files(os.environ if environ is None else environ, SECRET_VARIABLES)
        d = cls()
        return cls(
            redis_url=_redis_url(env, "REDIS_URL", d.redis_url),
            redis_url_given=_raw(env, "REDIS_URL") is not None,
            worker_concurrency=_int(env, "EXECUTION_WORKER_CONCURRENCY", d.worker_concurrency, minimum=1),
            state_ttl=_int(env, "EXECUTION_STATE_TTL", d.state_ttl, minimum=1),
            completion_ttl=_int(env, "EXECUTION_COMPLETION_TTL", d.completion_ttl, minimum=1),
            queue=_name(env, "EXECUTION_QUEUE", d.queue),
            retry_intervals=_int_list(env, "EXECUTION_RETRY_INTERVALS", d.retry_intervals),
            job_timeout=_int(env, "EXECUTION_JOB_TIMEOUT", d.job_timeout, minimum=1),
            memory_limit_mb=_int(env, "EXECUTION_MEMORY_LIMIT_MB", d.memory_limit_mb, minimum=0),
            isolation=_choice(env, "EXECUTION_ISOLATION", d.isolation.upper(),
                              ("SUPERVISED", "FORK", "INLINE")).lower(),
            worker_max_jobs=_int(env, "EXECUTION_WORKER_MAX_JOBS", d.worker_max_jobs, minimum=0),
            worker_max_memory_mb=_int(env, "EXECUTION_WORKER_MAX_MEMORY_MB", d.worker_max_memory_mb, minimum=0),
            timeout_kill_grace=_int(env, "EXECUTION_TIMEOUT_KILL_GRACE", d.timeout_kill_grace, minimum=1),
            failure_ttl=_int(env, "EXECUTION_FAILURE_TTL", d.failure_ttl, minimum=1),
            worker_ttl=_int(env, "EXECUTION_WORKER_TTL", d.worker_ttl, minimum=16),
            maintenance_interval=_int(env, "EXECUTION_MAINTENANCE_INTERVAL", d.maintenance_interval, minimum=1),
            job_monitoring_interval=_int(
                env, "EXECUTION_JOB_MONITORING_INTERVAL", d.job_monitoring_interval, minimum=1
            ),
            heartbeat_grace=_int(env, "EXECUTION_HEARTBEAT_GRACE", d.heartbeat_grace, minimum=1),
            api_token=_api_token(env, "NODEDROP_API_TOKEN"),
            api_host=env.get("NODEDROP_API_HOST", d.api_host) or d.api_host,
            api_port=_int(env, "NODEDROP_API_PORT", d.api_port, minimum=1, maximum=65535),
            exporter_host=env.get("NODEDROP_EXPORTER_HOST", d.exporter_host) or d.exporter_host,
            exporter_port=_int(env, "NODEDROP_EXPORTER_PORT", d.exporter_port, minimum=1, maximum=65535),
            worker_health_host=env.get("NODEDROP_WORKER_HEALTH_HOST", d.worker_health_host) or d.worker_health_host,
            worker_health_port=_int(env, "NODEDROP_WORKER_HEALTH_PORT", d.worker_health_port, minimum=0,
                                    maximum=65535),
            target_wait_seconds=_float(env, "EXECUTION_TARGET_WAIT_SECONDS", d.target_wait_seconds, minimum=0.001),
            max_body_bytes=_int(env, "NODEDROP_MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
            api_body_timeout=_int(env, "NODEDROP_API_BODY_TIMEOUT", d.api_body_timeout, minimum=1, maximum=3600),
            sse_max_seconds=_int(env, "NODEDROP_SSE_MAX_SECONDS", d.sse_max_seconds, minimum=1, maximum=86400),
            sse_heartbeat=_int(env, "NODEDROP_SSE_HEARTBEAT", d.sse_heartbeat, minimum=1, maximum=300),
            sse_max_connections=_int(env, "NODEDROP_SSE_MAX_CONNECTIONS", d.sse_max_connections, minimum=1,
                                     maximum=100_000),
            webhook_wait_seconds=_float(env, "NODEDROP_WEBHOOK_WAIT_SECONDS", d.webhook_wait_seconds, minimum=0.1),
            max_nodes=_int(env, "WORKFLOW_MAX_NODES", d.max_nodes, minimum=1),
            max_input_items=_int(env, "WORKFLOW_MAX_ITEMS", d.max_input_items, minimum=1),
            max_expression_length=_int(env, "WORKFLOW_MAX_EXPRESSION_LENGTH", d.max_expression_length, minimum=1),
            max_document_bytes=_int(env, "WORKFLOW_MAX_DOCUMENT_BYTES", d.max_document_bytes, minimum=1024),
            max_depth=_int(env, "WORKFLOW_MAX_DEPTH", d.max_depth, minimum=8, maximum=500),
            max_delay_seconds=float(_int(env, "WORKFLOW_MAX_DELAY_SECONDS", int(d.max_delay_seconds), minimum=0)),
            max_response_bytes=_int(env, "WORKFLOW_MAX_RESPONSE_BYTES", d.max_response_bytes, minimum=1024),
            http_allow_private_network=_bool(env, "NODEDROP_HTTP_ALLOW_PRIVATE_NETWORK", False),
            http_allowed_networks=_networks(env, "NODEDROP_HTTP_ALLOWED_NETWORKS"),
            js_time_limit_ms=_int(env, "NODEDROP_JS_TIME_LIMIT_MS", d.js_time_limit_ms, minimum=1),
            js_memory_limit_mb=_int(env, "NODEDROP_JS_MEMORY_LIMIT_MB", d.js_memory_limit_mb, minimum=8),
            js_stack_limit_kb=_int(env, "NODEDROP_JS_STACK_LIMIT_KB", d.js_stack_limit_kb, minimum=64, maximum=4096),
            code_max_timeout_ms=_int(env, "NODEDROP_CODE_MAX_TIMEOUT_MS", d.code_max_timeout_ms, minimum=1),
            log_level=_choice(env, "NODEDROP_LOG_LEVEL", d.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            function_modules=tuple(
                m.strip() for m in env.get("NODEDROP_FUNCTION_MODULES", "").split(",") if m.strip()
            ),
            scheduler_interval=_int(env, "NODEDROP_SCHEDULER_INTERVAL", d.scheduler_interval, minimum=1, maximum=60),
            scheduler_lock_ttl=_int(env, "NODEDROP_SCHEDULER_LOCK_TTL", d.scheduler_lock_ttl, minimum=2, maximum=300),
            queue_redis_urls=_queue_redis_urls(env, "EXECUTION_QUEUE_REDIS_URLS"),
            queue_shards=_queue_shards(env, "EXECUTION_QUEUE_SHARDS"),
        )


# Variables that may instead be given as NAME_FILE, the path of a file holding the value (Docker and
# Kubernetes secrets mounted as files stay out of the environment, `docker inspect` and /proc/*/environ).
SECRET_VARIABLES = ("REDIS_URL", "EXECUTION_QUEUE_REDIS_URLS", "NODEDROP_API_TOKEN")
# deploy/k8s ships this in its Secret so that applying the manifests unedited cannot start an API that a
# guessable token opens: a token that starts with it stops the process at start.
API_TOKEN_PLACEHOLDER = "REPLACE_ME"  # noqa: S105 - the marker of a missing token, not one


def _with_secret_files(env: Mapping[str, str], names: tuple[str, ...]) -> Mapping[str, str]:
    resolved: dict[str, str] | None = None
    for name in names:
        path = _raw(env, f"{name}_FILE")
        if path is None:
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                # A trailing newline is what `echo value > file` and most editors leave; it is never meant.
                value = handle.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise SettingsError(f"invalid {name}_FILE={path!r}: cannot read it ({reason})") from None
        if not value.strip():
            raise SettingsError(f"invalid {name}_FILE={path!r}: the file is empty")
        given = env.get(name)
        # Two different values would leave it to chance which one the operator meant. The same value is
        # fine: a parent that resolved the file passes it on to its children as the variable.
        if given is not None and given.strip() and given != value:
            raise SettingsError(f"invalid {name}_FILE: {name} is set too, to another value; set only one of them")
        resolved = dict(env) if resolved is None else resolved
        resolved[name] = value
    return env if resolved is None else resolved


def _api_token(env: Mapping[str, str], name: str) -> str | None:
    token = env.get(name) or None
    if token is not None and token.strip().startswith(API_TOKEN_PLACEHOLDER):
        # Never echo the value: name the variable and what to do.
        raise SettingsError(f"invalid {name}: it is the deploy files' placeholder; set a real token "
                            f"(e.g. openssl rand -hex 32) or leave it unset for an API on loopback only")
    return token


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: str, why: str) -> SettingsError:
    return SettingsError(f"invalid {name}={value!r}: {why}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, raw, "expected a whole number") from None
    if value < minimum:
        raise _bad(name, raw, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise _bad(name, raw, f"must be at most {maximum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, raw, "expected a number of seconds, e.g. 5 or 0.5") from None
    if not value >= minimum or value == float("inf"):  # also refuses nan
        raise _bad(name, raw, f"must be a finite number of at least {minimum:g}")
    return value


def _int_list(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    if name not in env:
        return default
    raw = env[name]
    parts = [p.strip() for p in raw.split(",")]
    if not raw.strip() or any(p == "" for p in parts):
        raise _bad(name, raw, "expected a comma-separated list of seconds, e.g. 2,4,8")
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise _bad(name, raw, f"{part!r} is not a whole number of seconds") from None
        if value < 0:
            raise _bad(name, raw, "intervals cannot be negative")
        values.append(value)
    return tuple(values)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise _bad(name, raw, "expected true or false")


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _raw(env, name)
    if raw is None:
        return ()
    networks = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise _bad(name, raw, f"{part!r} is not an IP network such as 10.0.0.0/8 or 127.0.0.1") from None
    return tuple(networks)


def _name(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    if not all(c.isalnum() or c in "-_.:" for c in raw):
        raise _bad(name, raw, "use letters, digits and - _ . : only")
    return raw


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.upper() not in choices:
        raise _bad(name, raw, f"expected one of {', '.join(choices)}")
    return raw.upper()


def _redis_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    return default if raw is None else check_redis_url(raw, name)


def check_redis_url(raw: str, name: str = "REDIS_URL") -> str:
    """``raw`` if it is a Redis URL; SettingsError naming ``name`` (never the password) otherwise."""
    parts = urlsplit(raw)
    if parts.scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(raw, name)
        return raw
    if parts.scheme not in ("redis", "rediss", "unix"):
        # The URL may hold a password: name the scheme, never echo the value.
        raise SettingsError(f"invalid {name}: scheme {parts.scheme!r} is not redis://, rediss://, unix:// "
                            f"or redis+sentinel://")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise SettingsError(f"invalid {name}: the port is not a number") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"invalid {name}: no host")
    return raw


# An entry of EXECUTION_QUEUE_REDIS_URLS begins with `queue=scheme://`; commas inside a URL (a Sentinel
# URL's host list) are not followed by that, so they do not split entries.
_MAP_ENTRY_START = re.compile(r",(?=\s*[^,=\s]+\s*=\s*[A-Za-z][A-Za-z0-9+.-]*://)")


def queue_name_problem(queue: str) -> str | None:
    if not queue:
        return "an empty queue name (a stray comma or separator?)"
    if not all(c.isalnum() or c in "-_.:" for c in queue):
        return f"queue name {queue!r} may use letters, digits and - _ . : only"
    return None


def _queue_redis_urls(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """``orders=redis://a:6379/0,reports=redis+sentinel://s1:26379,s2:26379/reports/0``. Errors name the
    entry's queue, never the URL (it may hold a password)."""
    raw = _raw(env, name)
    if raw is None:
        return ()
    out: dict[str, str] = {}
    for entry in _MAP_ENTRY_START.split(raw):
        queue, equals, url = (part.strip() for part in entry.partition("="))
        if not equals:
            raise SettingsError(f"invalid {name}: entry {len(out) + 1} is not queue=redis-url "
                                f"(e.g. orders=redis://redis-a:6379/0)")
        problem = queue_name_problem(queue)
        if problem:
            raise SettingsError(f"invalid {name}: {problem}")
        if queue in out:
            raise SettingsError(f"invalid {name}: queue {queue!r} is given twice")
        if not url:
            raise SettingsError(f"invalid {name}: queue {queue!r} has no URL")
        if url.endswith(","):
            raise SettingsError(f"invalid {name}: a stray comma after the URL of queue {queue!r}")
        out[queue] = check_redis_url(url, f"{name} (queue {queue})")
    return tuple(out.items())


def _queue_shards(env: Mapping[str, str], name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``orders=orders-0|orders-1|orders-2,reports=reports-a|reports-b``."""
    raw = _raw(env, name)
    if raw is None:
        return ()
    out: dict[str, tuple[str, ...]] = {}
    taken: set[str] = set()
    for entry in raw.split(","):
        group, equals, listed = (part.strip() for part in entry.partition("="))
        shards = tuple(s.strip() for s in listed.split("|"))
        if not equals or not listed:
            raise _bad(name, raw, f"entry {entry.strip()!r} is not name=shard|shard... (e.g. orders=orders-0|orders-1)")
        for queue in (group, *shards):
            problem = queue_name_problem(queue)
            if problem:
                raise _bad(name, raw, problem)
        if group in out or group in taken:
            raise _bad(name, raw, f"{group!r} is given twice")
        if len(set(shards)) != len(shards) or taken & set(shards) or group in shards or set(shards) & set(out):
            raise _bad(name, raw, f"the shards of {group!r} repeat a queue; each queue belongs to one group")
        out[group] = shards
        taken.update(shards)
    return tuple(out.items())


def parse_sentinel_url(raw: str, name: str = "REDIS_URL") -> SentinelTarget:
    """``redis[s]+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db][?options]``.

    SettingsError naming ``name`` and what is wrong, never the value (it may hold passwords)."""
    parts = urlsplit(raw)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise SettingsError(f"invalid {name}: scheme {parts.scheme!r} is not redis+sentinel:// or rediss+sentinel://")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = tuple(_sentinel_address(item, name) for item in hostlist.split(","))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise SettingsError(f"invalid {name}: no master name; use {parts.scheme}://host:26379/mymaster/0")
    if len(path) > 2:
        raise SettingsError(f"invalid {name}: the path is /master-name[/db], got {len(path)} parts")
    service = unquote(path[0])
    if not all(c.isalnum() or c in "-_.:" for c in service):
        raise SettingsError(f"invalid {name}: the master name uses letters, digits and - _ . : only")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise SettingsError(f"invalid {name}: the database after the master name is not a number")
        db = int(path[1])
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _SENTINEL_OPTIONS:
            raise SettingsError(f"invalid {name}: unknown option {key!r}; known: {', '.join(_SENTINEL_OPTIONS)}")
        options[key] = value
    cert_reqs = options.get("ssl_cert_reqs") or None
    if cert_reqs is not None and cert_reqs not in ("none", "optional", "required"):
        raise SettingsError(f"invalid {name}: ssl_cert_reqs must be none, optional or required")
    tls = parts.scheme == "rediss+sentinel"
    if not tls and (cert_reqs or options.get("ssl_ca_certs")):
        raise SettingsError(f"invalid {name}: ssl_* options need rediss+sentinel://")
    return SentinelTarget(
        sentinels=sentinels, service_name=service, db=db, tls=tls,
        username=unquote(username) or None, password=unquote(password) or None,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        ssl_ca_certs=options.get("ssl_ca_certs") or None, ssl_cert_reqs=cert_reqs,
    )


def _sentinel_address(item: str, name: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise SettingsError(f"invalid {name}: a sentinel address has no host (a stray comma?)")
    if not port_text:
        return host, SENTINEL_DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(f"invalid {name}: the port of sentinel {host} is not a number from 1 to 65535")
    return host, int(port_text)


_configured: Settings | None = None


def configure(settings: Settings) -> None:
    """Make ``settings`` this process's settings (a worker started with explicit settings passes them
    on to the job code it runs)."""
    global _configured
    _configured = settings


def get_settings() -> Settings:
    """Settings of this process: those given to :func:`configure`, else read once from the environment."""
    return _configured if _configured is not None else _settings_from_env()


@lru_cache(maxsize=1)
def _settings_from_env() -> Settings:
    return Settings.from_env()
