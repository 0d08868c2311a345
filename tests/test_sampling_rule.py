"""srca.kernels.sampling_rule: the top-k -> temperature -> top-p rule shared by the torch reference
and the local engine's per-row sampler (their draws are tested in test_kernels.py and
test_engine_contract.py)."""
import torch

from srca.kernels.sampling_rule import greedy_rows, keep_mask, top_k_floor, top_p_floor


def test_top_k_floor_keeps_ties():
    desc = torch.tensor([5.0, 4.0, 4.0, 4.0, 1.0])
    assert int((desc >= top_k_floor(desc, 2)).sum()) == 4
    rows = torch.stack([desc, desc])
    assert top_k_floor(rows, torch.tensor([1, 5])).flatten().tolist() == [5.0, 1.0]


def test_top_p_floor_reaches_the_share_and_keeps_ties():
    probs = torch.tensor([0.5, 0.2, 0.2, 0.1])
    assert int((probs >= top_p_floor(probs, 0.6)).sum()) == 3  # 0.5 + 0.2 reaches 0.6; the tied 0.2 stays
    assert int((probs >= top_p_floor(probs, 0.4)).sum()) == 1
    assert int((probs >= top_p_floor(probs, 0.6, 2.0)).sum()) == 4  # a share of a larger total
    # one row with python floats and a batch with tensors give the same floor
    batch = top_p_floor(torch.stack([probs, probs]), torch.tensor([[0.6], [0.4]]))
    assert batch.flatten().tolist() == [float(top_p_floor(probs, 0.6)), float(top_p_floor(probs, 0.4))]


def test_keep_mask_applies_top_k_then_temperature_then_top_p():
    x = torch.tensor([[3.0, 2.0, 1.0, 0.0, float("-inf")]])
    one = lambda v, dt=torch.float32: torch.tensor([v], dtype=dt)  # noqa: E731
    keep, probs = keep_mask(x, one(1.0), one(3, torch.int64), one(1.0))
    assert keep.tolist() == [[True, True, True, False, False]]
    assert torch.allclose(probs[0, :3], torch.softmax(x[0, :3], 0)) and probs[0, 3:].sum() == 0
    keep, _ = keep_mask(x, one(0.1), one(0, torch.int64), one(0.9))  # cold: the top token holds 0.9
    assert keep.tolist() == [[True, False, False, False, False]]
    assert greedy_rows(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 1, 5])).tolist() == [True, True, False]
