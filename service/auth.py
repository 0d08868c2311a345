"""Optional bearer API keys and a per-key rate limit kept in Redis (fixed one-minute window)."""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any

from .redis_conn import RedisHandle, RedisUnavailable

log = logging.getLogger("srca.service")


class AuthError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Auth:
    """``check(authorization_header)``: raises :class:`AuthError` (401 or 429) or returns the
    key's id (a hash prefix, safe to log) or ``None`` when keys are off."""

    def __init__(self, keys: frozenset[str], redis: RedisHandle, per_min: int) -> None:
        self.keys = [k.encode() for k in keys]
        self.redis = redis
        self.per_min = per_min

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    async def check(self, authorization: str | None) -> str | None:
        if not self.keys:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        tok = token.strip().encode()
        if scheme.lower() != "bearer" or not tok or not any(hmac.compare_digest(tok, k) for k in self.keys):
            raise AuthError(401, "missing or invalid API key (send 'Authorization: Bearer <key>')",
                            {"WWW-Authenticate": "Bearer"})
        key_id = hashlib.sha256(tok).hexdigest()[:16]
        if self.per_min:
            await self._limit(key_id)
        return key_id

    async def _limit(self, key_id: str) -> None:
        if not self.redis.up:
            return  # fail open: an outage must not lock every client out
        now = time.time()
        window = int(now // 60)
        k = self.redis.key("rl", key_id, str(window))

        async def run(c: Any) -> int:
            pipe = c.pipeline(transaction=False)
            pipe.incr(k)
            pipe.expire(k, 120)
            n, _ = await pipe.execute()
            return int(n)

        try:
            n = await self.redis.call(run)
        except RedisUnavailable:
            return
        if n > self.per_min:
            retry = max(1, int((window + 1) * 60 - now + 0.999))
            raise AuthError(429, f"rate limit exceeded: {self.per_min} requests per minute per key",
                            {"Retry-After": str(retry)})
