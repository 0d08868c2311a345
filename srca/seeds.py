"""Every seed derivation, written once: which random stream a seed selects, per engine.

From a search down to one draw::

    SearchConfig.seed ──request_seed(seed, node.id, salt)──► GenRequest.seed       (SearchContext.seed_for)
        a request the service splits into pieces: piece k > 0 gets request_seed(seed, k)  (service.engine_guard)
    GenRequest.seed ──► per engine
        sglang, http: sample_seed(seed, i) ──► SGLang's ``sampling_seed`` of sample i
        local:        first token of every child: srca.kernels.sample_fanout(seed=fanout_seed(seed), offset=0)
                      later tokens: uniform(stream_seed(seed, child), step), step >= 1
    srca.kernels.sample_fanout(seed, offset)
        torch reference: a torch.Generator seeded with reference_seed(seed, offset)
        Triton kernel:   kernel_key(seed, offset) on the host; in the kernel, child c of row r draws
                         kernel_uniform(seed, offset, c, r) (``triton_helpers._uniform`` mirrors it)

Pure Python integer arithmetic (no torch): the search, the service and every engine import it.
None of these may change: a seed must keep giving the same tokens.
"""
from __future__ import annotations

import struct

GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd: splitmix64's increment
MASK64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_PRIME = 1_000_003
FANOUT_CHILD = 1 << 32  # the stream index of a local request's first-token fan-out (past every child)


def request_seed(seed: int, index: int, salt: int = 0) -> int:
    """Seed of request ``index`` (a tree node's id, a piece of a split request) derived from
    ``seed``, plus ``salt``: in [0, 2**31 - 1)."""
    return (seed * _PRIME + index * 7919 + salt) % (2**31 - 1)


def sample_seed(seed: int | None, i: int) -> int | None:
    """SGLang's ``sampling_seed`` of sample ``i`` of a request seeded with ``seed`` (a stream
    per ``(seed, i)``); None for an unseeded request."""
    if seed is None:
        return None
    return (int(seed) * _PRIME + i) & 0x7FFFFFFF


# -- the local engine: counter-based streams (a row's draws do not depend on its batch) --------


def mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of ``x``."""
    x = (x + GOLDEN) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def stream_seed(seed: int, child: int) -> int:
    """Seed of sample ``child`` of a local request with ``seed`` (non-negative, < 2**63)."""
    return mix64(mix64(seed & MASK64) ^ child) >> 1


def fanout_seed(seed: int) -> int:
    """``sample_fanout``'s seed for the first tokens of a local request with ``seed``."""
    return stream_seed(seed, FANOUT_CHILD)


def uniform(stream: int, step: int) -> float:
    """A uniform draw in [0, 1) for ``step`` of a stream (counter based, no state)."""
    return (mix64(stream ^ mix64(step)) >> 11) * (1.0 / (1 << 53))


# -- srca.kernels.sample_fanout(seed, offset) ---------------------------------------------------


def reference_seed(seed: int, offset: int) -> int:
    """The torch.Generator seed of the torch reference for ``(seed, offset)`` (both >= 0)."""
    return (int(seed) * GOLDEN + int(offset)) % (2**63)


def kernel_key(seed: int, offset: int) -> tuple[int, int, int]:
    """The Triton kernel's ``(s0, s1, off_lo)``, each < 2**31 (i32 kernel arguments, so new seeds
    never recompile): the 62-bit Philox key ``(s1 << 31) | s0`` is ``seed`` with the offset's bits
    above 31 folded in; ``off_lo`` is the offset's low 31 bits, a counter word."""
    key = (int(seed) ^ ((int(offset) >> 31) * GOLDEN)) & (2**62 - 1)
    return key & 0x7FFFFFFF, key >> 31, int(offset) & 0x7FFFFFFF


def philox4x32(key: int, counter: tuple[int, int, int, int], rounds: int = 10) -> tuple[int, int, int, int]:
    """Philox4x32 as ``triton.language.philox`` computes it (64-bit ``key``, four 32-bit words)."""
    k0, k1 = key & _M32, (key >> 32) & _M32
    c0, c1, c2, c3 = counter
    for _ in range(rounds):
        a, b = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (b >> 32) ^ c1 ^ k0, b & _M32, (a >> 32) ^ c3 ^ k1, a & _M32
        k0, k1 = (k0 + 0x9E3779B9) & _M32, (k1 + 0xBB67AE85) & _M32
    return c0, c1, c2, c3


def kernel_uniform(seed: int, offset: int, child: int, row: int) -> float:
    """The uniform in (0, 1) that the Triton kernel draws child ``child`` of row ``row`` with
    (``triton_helpers._uniform``: Philox keyed by :func:`kernel_key`, counter (child, row,
    off_lo, 0x5EED), the top 24 bits of the first word, centred; float32)."""
    s0, s1, off_lo = kernel_key(seed, offset)
    r0 = philox4x32((s1 << 31) | s0, (child & _M32, row & _M32, off_lo, 0x5EED))[0]
    # float32(m * 2**-24 + 2**-25): the exact sum (it fits a double) rounded once, as the kernel's add
    return struct.unpack("f", struct.pack("f", (r0 >> 8) * 2.0**-24 + 2.0**-25))[0]


__all__ = ["FANOUT_CHILD", "GOLDEN", "MASK64", "fanout_seed", "kernel_key", "kernel_uniform", "mix64",
           "philox4x32", "reference_seed", "request_seed", "sample_seed", "stream_seed", "uniform"]
