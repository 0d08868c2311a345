"""srca.kernels: sampling kernels (Triton) beside slow torch references with the same signatures.

``sample(logits[B, V], ...) -> tokens[B]`` and ``sample_fanout(logits[P, V], n, ...) -> tokens[P, n]``
use the Triton kernel on CUDA tensors and the torch reference elsewhere. See README.md here.
"""
from .sampling import sample, sample_fanout, triton_available
from .sampling_ref import sample_fanout_ref, sample_ref

__all__ = ["sample", "sample_fanout", "sample_ref", "sample_fanout_ref", "triton_available"]
