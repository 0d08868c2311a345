"""Shared argument handling for the sampling kernels and their references (no host-device sync)."""
from __future__ import annotations

import numbers

import torch


_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_logits(logits: torch.Tensor, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a 2-D tensor [rows, vocab], got {getattr(logits, 'shape', type(logits))}")
    if logits.shape[1] == 0:
        raise ValueError("logits has an empty vocabulary")
    if logits.dtype not in _FLOATS:
        raise ValueError(f"logits must be a floating tensor, got {logits.dtype}")
    if type(n) is not int and (not isinstance(n, numbers.Integral) or isinstance(n, bool)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")


def _one(name, value, rows, device, dtype):
    """A scalar or a [rows] tensor -> a [rows] tensor of ``dtype`` on ``device``."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            value = value.reshape(1).expand(rows)
        if value.shape != (rows,):
            raise ValueError(f"{name} must be a scalar or a [{rows}] tensor, got shape {tuple(value.shape)}")
        return value.to(device=device, dtype=dtype, non_blocking=True)
    _check_scalar(name, value)
    return torch.full((rows,), value, device=device, dtype=dtype)


def _check_scalar(name, value):
    t = type(value)  # python int / float first: the ABC check below costs a microsecond per call
    if t is not float and t is not int and (not isinstance(value, numbers.Real) or isinstance(value, bool)):
        raise ValueError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    if name == "top_p" and not (0.0 < float(value) <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {value}")
    if name == "top_k" and int(value) != value:
        raise ValueError(f"top_k must be an int, got {value}")
    if name == "temperature" and value != value:
        raise ValueError("temperature is NaN")


def kernel_params(rows, device, temperature, top_k, top_p):
    """For the kernel: each parameter stays a validated python scalar (no device work, no
    allocation) or becomes a [rows] tensor of the kernel's dtype on ``device``."""
    if isinstance(temperature, torch.Tensor):
        temperature = _one("temperature", temperature, rows, device, torch.float32)
    else:
        _check_scalar("temperature", temperature)
        temperature = float(temperature)
    if isinstance(top_k, torch.Tensor):
        top_k = _one("top_k", top_k, rows, device, torch.int64)
    else:
        _check_scalar("top_k", top_k)
        top_k = int(top_k)
    if isinstance(top_p, torch.Tensor):
        top_p = _one("top_p", top_p, rows, device, torch.float32)
    else:
        _check_scalar("top_p", top_p)
        top_p = float(top_p)
    return temperature, top_k, top_p


def row_params(rows, device, temperature, top_k, top_p):
    """Per-row (temperature f32, top_k i64, top_p f32), each [rows]."""
    return (
        _one("temperature", temperature, rows, device, torch.float32),
        _one("top_k", top_k, rows, device, torch.int64),
        _one("top_p", top_p, rows, device, torch.float32),
    )


def check_seed(seed, offset) -> None:
    for name, v in (("seed", seed), ("offset", offset)):
        if type(v) is not int and (not isinstance(v, numbers.Integral) or isinstance(v, bool)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
