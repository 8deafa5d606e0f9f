"""Token and temperature schedules of the parallel samplers."""

import math

import pytest
import torch

from fourm.errors import FourmError
from fourm.generation.schedules import TemperatureSchedule, chunks_per_step, fixed_per_step, masked_fraction


@pytest.mark.parametrize("schedule", ["cosine", "linear", "square", "cubic", "sqrt"])
@pytest.mark.parametrize("steps", [1, 3, 8, 20])
def test_counts_sum_to_masked_and_every_step_fixes_one(schedule, steps):
    num = torch.tensor([0, 1, 5, 20, 196])
    counts = fixed_per_step(num, steps, schedule)
    assert counts.shape == (5, steps)
    assert torch.equal(counts.sum(dim=1), num)
    assert (counts >= 0).all()
    for row, n in zip(counts.tolist(), num.tolist()):
        # min(n, steps) leading steps fix at least one token, the rest none
        assert all(c >= 1 for c in row[: min(n, steps)])
        assert all(c == 0 for c in row[min(n, steps):]) or n >= steps


def test_cosine_counts_follow_the_formula():
    n, steps = 196, 8
    remaining = [math.floor(n * math.cos(math.pi / 2 * s / steps)) for s in range(1, steps + 1)]
    remaining[-1] = 0
    expected = [a - b for a, b in zip([n, *remaining[:-1]], remaining)]
    assert fixed_per_step(torch.tensor([n]), steps, "cosine")[0].tolist() == expected
    assert expected == [4, 11, 19, 24, 30, 33, 37, 38]


def test_linear_schedule_is_even_and_schedules_differ():
    assert fixed_per_step(torch.tensor([20]), 5, "linear")[0].tolist() == [4, 4, 4, 4, 4]
    cosine = fixed_per_step(torch.tensor([100]), 4, "cosine")[0]
    sqrt = fixed_per_step(torch.tensor([100]), 4, "sqrt")[0]
    assert cosine[0] < cosine[-1] and sqrt[0] > sqrt[-1]  # cosine starts slow, sqrt starts fast


def test_masked_fraction_endpoints_and_unknown_name():
    for name in ("cosine", "linear", "square", "cubic", "sqrt"):
        gamma = masked_fraction(name)
        assert gamma(0.0) == pytest.approx(1.0) and gamma(1.0) == pytest.approx(0.0)
    with pytest.raises(FourmError, match="unknown token schedule 'cosin'"):
        fixed_per_step(torch.tensor([4]), 2, "cosin")


def test_chunks_are_equal_then_remainder():
    counts = chunks_per_step(torch.tensor([196, 10, 3]), 8)
    assert counts[0].tolist() == [25] * 7 + [21]
    assert counts[1].tolist() == [2, 2, 2, 2, 2, 0, 0, 0]
    assert counts[2].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_temperature_schedules():
    assert [TemperatureSchedule(0.7).at(s, 5) for s in range(5)] == [0.7] * 5
    linear = TemperatureSchedule(2.0, 0.0, "linear")
    assert [linear.at(s, 5) for s in range(5)] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
    cosine = TemperatureSchedule(1.0, 0.0, "cosine")
    assert cosine.at(0, 3) == pytest.approx(1.0) and cosine.at(1, 3) == pytest.approx(0.5)
    assert cosine.at(2, 3) == pytest.approx(0.0)
    with pytest.raises(FourmError, match="temperatures must be >= 0"):
        TemperatureSchedule(-1.0)
