"""srca.seeds: every seed derivation, pinned to the numbers it gave before it was gathered in one
module (a seed must keep giving the same tokens). The Triton kernel's in-kernel draw against
``kernel_uniform`` is in test_kernels.py (it needs the interpreter's setup)."""
import dataclasses

from srca import SearchConfig
from srca.engines.base import GenRequest
from srca.engines.sglang_common import sampling_params
from srca.seeds import (FANOUT_CHILD, fanout_seed, kernel_key, philox4x32, reference_seed, request_seed,
                        sample_seed, stream_seed, uniform)


def test_local_streams_are_pinned():
    assert [stream_seed(3, c) for c in (0, 1, 5, FANOUT_CHILD)] == [
        6802404449170015307, 8513542685296429273, 7435603815101345319, 3766065931832886566]
    assert fanout_seed(3) == 3766065931832886566
    assert [uniform(stream_seed(0, 0), s) for s in range(3)] == [
        0.1004772059613167, 0.4943149912219449, 0.07959538669423971]
    assert all(0 <= stream_seed(s, c) < 2**63 for s in (0, 2**64 - 1, 2**70) for c in (0, 7))


def test_engine_and_kernel_seeds_are_pinned():
    assert [sample_seed(5, i) for i in range(4)] == [5000015, 5000016, 5000017, 5000018]
    assert sample_seed(None, 2) is None
    assert [reference_seed(2**31, o) for o in (0, 1, 2**33)] == [
        4586140010364796928, 4586140010364796929, 4586140018954731520]
    assert kernel_key(2**40 + 3, 2**33 + 5) == (2099900503, 1908133835, 5)
    assert all(0 <= v < 2**31 for v in kernel_key(2**62 - 1, 2**62 - 1))


def test_request_seeds_are_pinned_and_shared():
    assert request_seed(42, 17, 3) == 42134752
    assert request_seed(2**40, 2) == 512017374
    # the search's per-node seeds and the service's split pieces use this one derivation
    from srca.methods.context import Node, SearchContext

    ctx = SearchContext.__new__(SearchContext)  # seed_for reads the config alone
    ctx.config = SearchConfig(seed=42)
    assert ctx.seed_for(Node(id=17, parent=None, depth=0), 3) == 42134752


def test_sglang_sampling_seed_comes_from_sample_seed():
    req = GenRequest(prompt="x", temperature=0.7, n=3, seed=5)
    assert [sampling_params(req, i)["sampling_seed"] for i in range(3)] == [5000015, 5000016, 5000017]
    assert "sampling_seed" not in sampling_params(dataclasses.replace(req, temperature=0.0), 0)


def test_philox_known_answers():
    """Random123's known-answer vectors for Philox4x32-10 (the kernel's ``tl.philox``)."""
    assert philox4x32(0, (0, 0, 0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32(2**64 - 1, (2**32 - 1,) * 4) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox4x32((0x299F31D0 << 32) | 0xA4093822, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)
