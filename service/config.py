"""ServiceConfig: every knob of ``srca serve``, validated in one place (no I/O here)."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one service replica. Times are seconds.

    ``redis_url``: ``None`` runs without Redis (no cache, no jobs: job endpoints answer 503).
    ``api_keys_env``: name of the environment variable holding comma-separated API keys;
    when it is set and non-empty every API route needs ``Authorization: Bearer <key>``.
    ``rate_limit_per_min``: requests per key per minute (0: unlimited; needs Redis).
    ``max_concurrent_solves``: solves running at once in this replica (more wait).
    ``job_concurrency``: jobs this replica's worker runs at once (0: no worker here).
    ``job_lease_s``: a worker that has not renewed its lease for this long is presumed dead
    and its jobs go back to the queue; ``job_attempts``: a job is marked failed after that many.
    ``lock_ttl_s``: the single-flight lock of a solve (renewed every third of it while the solve
    runs); replicas waiting on a lock whose holder died take over after at most this long.

    Access: ``shared_cache``: with API keys on, let every key share one cache and single-flight
    (off: each key sees only its own results). ``allowed_hosts``: comma-separated ``Host`` names
    accepted (``*``: any; ``auto``: the loopback names when ``host`` is a loopback address, else
    any), a guard against DNS rebinding.

    Limits (service/README.md gives the reason for each default): ``max_n``: most budget ``n``
    a request may ask; ``max_request_tokens``: most ``rows x (max_new_tokens + prompt)`` tokens one
    solve may hold (its KV cache); ``max_inflight_tokens``: that cost summed over the solves running
    in this replica (/solve beyond it: 429, jobs wait); ``default_deadline_s``: the deadline of a
    request that sets none (the best answer so far, or 504); ``max_deadline_s``: the largest
    ``deadline_s`` accepted. HTTP: ``max_header_bytes`` (request line + headers),
    ``header_timeout_s`` (from connect, or from the first byte of the next request, to the end of
    the headers), ``body_timeout_s`` (the whole body), ``keep_alive_s`` (idle between requests),
    ``max_connections`` (beyond it: 503). ``engine_retry_s``: how often an engine that failed is
    probed, and the ``Retry-After`` of its 503s.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = "redis://localhost:6379/0"
    redis_prefix: str = "srca:"
    api_keys_env: str = "SRCA_API_KEYS"
    rate_limit_per_min: int = 0
    cache_ttl_s: float = 3600.0
    cache: bool = True
    max_concurrent_solves: int = 256
    max_body_bytes: int = 1_000_000
    job_concurrency: int = 16
    job_attempts: int = 3
    job_lease_s: float = 10.0
    job_ttl_s: float = 7 * 24 * 3600.0
    lock_ttl_s: float = 10.0
    redis_retry_s: float = 1.0
    log_level: str = "info"
    shared_cache: bool = False
    allowed_hosts: str = "auto"
    max_n: int = 64
    max_request_tokens: int = 262_144
    max_inflight_tokens: int = 1_048_576
    default_deadline_s: float = 300.0
    max_deadline_s: float = 3600.0
    max_header_bytes: int = 32_768
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    engine_retry_s: float = 5.0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"ServiceConfig.{name}: {why}")

        if not isinstance(self.host, str) or not self.host:
            bad("host", "must be a non-empty string")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            bad("port", f"must be an integer in [0, 65535], got {self.port!r}")
        if self.redis_url is not None:
            if not isinstance(self.redis_url, str) or not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
                bad("redis_url", f"must start with redis://, rediss:// or unix://, got {self.redis_url!r}")
        for name in ("redis_prefix", "api_keys_env", "log_level"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                bad(name, "must be a non-empty string")
        for name in ("rate_limit_per_min", "job_concurrency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                bad(name, f"must be an integer >= 0, got {v!r}")
        for name in ("max_concurrent_solves", "max_body_bytes", "job_attempts", "max_n", "max_request_tokens",
                     "max_inflight_tokens", "max_connections", "max_header_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, f"must be an integer >= 1, got {v!r}")
        for name in ("cache_ttl_s", "job_lease_s", "job_ttl_s", "lock_ttl_s", "redis_retry_s", "default_deadline_s",
                     "max_deadline_s", "header_timeout_s", "body_timeout_s", "keep_alive_s", "engine_retry_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                bad(name, f"must be a positive number, got {v!r}")
        for name in ("cache", "shared_cache"):
            if not isinstance(getattr(self, name), bool):
                bad(name, f"must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.allowed_hosts, str) or not self.allowed_hosts.strip():
            bad("allowed_hosts", "must be 'auto', '*' or comma-separated host names")
        if self.max_request_tokens > self.max_inflight_tokens:
            bad("max_request_tokens", f"must be <= max_inflight_tokens ({self.max_inflight_tokens}), "
                                      f"or no request could ever run")
        if self.default_deadline_s > self.max_deadline_s:
            bad("default_deadline_s", f"must be <= max_deadline_s ({self.max_deadline_s})")
        if self.max_header_bytes < 1024:
            bad("max_header_bytes", f"must be an integer >= 1024, got {self.max_header_bytes!r}")
        if self.job_lease_s < 0.3:
            bad("job_lease_s", f"must be >= 0.3, got {self.job_lease_s}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: "ServiceConfig | None" = None) -> "ServiceConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ServiceConfig: unknown field(s) {unknown}")
        return dataclasses.replace(base or cls(), **dict(data))

    def host_allowlist(self) -> list[str]:
        """The ``Host`` names accepted (``["*"]``: any)."""
        if self.allowed_hosts.strip() == "auto":
            if self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127."):
                return ["localhost", "127.0.0.1", "::1", "[::1]", *([self.host] if self.host.startswith("127.") else [])]
            return ["*"]
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    def api_keys(self) -> frozenset[str]:
        """The keys from the environment variable (read on each call: no I/O at construction)."""
        raw = os.environ.get(self.api_keys_env, "")
        return frozenset(k.strip() for k in raw.split(",") if k.strip())
