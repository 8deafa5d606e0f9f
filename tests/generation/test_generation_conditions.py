"""Conditions: given tokens (full or partial), checks, packed encoder rows."""

import pytest
import torch
from gen_testing import TOY_MODALITIES, toy_model

from fourm.errors import FourmError
from fourm.generation.conditions import EncoderInputs, GivenTokens, encoder_inputs, normalize_conditions


@pytest.fixture(scope="module")
def config():
    return toy_model().config


def test_given_tokens_defaults_and_broadcast():
    g = GivenTokens.at(torch.tensor([4, 5, 6]))
    assert g.tokens.shape == (1, 3) and g.positions.tolist() == [[0, 1, 2]] and g.valid.all()
    g = GivenTokens.at(torch.tensor([[1, 2], [3, 4]]), positions=torch.tensor([7, 3]))
    assert g.positions.tolist() == [[7, 3], [7, 3]]
    assert g.expand(2) is g
    assert GivenTokens.at(torch.tensor([1, 2])).expand(3).tokens.tolist() == [[1, 2]] * 3
    with pytest.raises(FourmError, match="batch size 2, expected 1 or num_samples = 3"):
        g.expand(3, "rgb")
    with pytest.raises(FourmError, match="do not match"):
        GivenTokens.at(torch.tensor([1, 2, 3]), positions=torch.tensor([0, 1]))


def test_sequence_validity_stops_after_eos():
    g = GivenTokens.sequence(torch.tensor([[5, 6, 2, 0, 0], [7, 2, 9, 2, 0]]), eos=2)
    assert g.valid.tolist() == [[True, True, True, False, False], [True, True, False, False, False]]
    g = GivenTokens.sequence(torch.tensor([5, 0, 6]), pad=0)
    assert g.valid.tolist() == [[True, False, True]]


def test_on_grid_scatters_given_tokens():
    g = GivenTokens.at(torch.tensor([[9, 8, 7]]), positions=torch.tensor([[5, 0, 2]]), valid=torch.tensor([[True, True, False]]))
    tokens, known = g.on_grid(6)
    assert tokens.tolist() == [[8, 0, 0, 0, 0, 9]]
    assert known.tolist() == [[True, False, False, False, False, True]]


def test_normalize_orders_checks_and_broadcasts(config):
    caption = torch.tensor([5, 6, 2])
    rgb = torch.arange(16) % 32
    given = normalize_conditions(config, {"caption": caption, "rgb": rgb}, num_samples=2)
    assert list(given) == ["rgb", "caption"]  # model order
    assert given["caption"].tokens.tolist() == [[5, 6, 2]] * 2
    enc = encoder_inputs(config, given)
    assert enc.tokens.shape == (2, 19)
    assert enc.modality[0].tolist() == [0] * 16 + [2] * 3
    assert enc.position[0].tolist() == list(range(16)) + [0, 1, 2]


@pytest.mark.parametrize("conditions, match", [
    ({"rgbb": torch.zeros(16, dtype=torch.long)}, "unknown modality 'rgbb'"),
    ({"rgb": torch.zeros(5, dtype=torch.long)}, "has 5 tokens but the image has 16"),
    ({"rgb": torch.full((16,), 32)}, r"token id 32 is out of range \(expected 0..31"),
    ({"rgb": GivenTokens.at(torch.tensor([1, 2]), positions=torch.tensor([3, 16]))}, "position 16 is out of range"),
    ({"rgb": GivenTokens.at(torch.tensor([1, 2]), positions=torch.tensor([3, 3]))}, "same position twice"),
    ({"caption": torch.zeros(13, dtype=torch.long)}, "more than the modality's length 12"),
    ({"rgb": torch.zeros(16)}, "must be integer ids"),
    ({"rgb": "abc"}, "must be a tensor of token ids or GivenTokens"),
])
def test_bad_conditions_name_the_problem(config, conditions, match):
    with pytest.raises(FourmError, match=match):
        normalize_conditions(config, conditions, num_samples=1)


def test_condition_on_a_non_input_modality_is_refused():
    from fourm.model import FourM, FourMConfig, ModalityConfig

    mods = {**TOY_MODALITIES, "meta": ModalityConfig("vector", 16, 3, input=False)}
    model = FourM(FourMConfig.from_dict({"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 4, "modalities": mods}))
    with pytest.raises(FourmError, match="'meta' cannot be a condition"):
        normalize_conditions(model.config, {"meta": torch.tensor([1, 2, 3])}, 1)


def test_compact_keeps_valid_tokens_and_drops_padding():
    valid = torch.tensor([[False, True, False, True], [False, False, False, True]])
    enc = EncoderInputs(torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]]), torch.zeros(2, 4, dtype=torch.long),
                        torch.tensor([[0, 1, 2, 3]] * 2), valid)
    c = enc.compact()
    assert c.width == 2
    assert c.tokens[0].tolist() == [2, 4] and c.valid[0].all()
    assert c.tokens[1, 0] == 8 and c.valid[1].tolist() == [True, False]
    assert EncoderInputs.empty(3).compact().width == 1  # never zero-width


def test_stack_pads_to_widest():
    a = EncoderInputs.of_modality(0, GivenTokens.at(torch.tensor([[1, 2, 3]])))
    b = EncoderInputs.of_modality(2, GivenTokens.at(torch.tensor([[4]])))
    s = EncoderInputs.stack([a, b])
    assert s.tokens.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert s.valid.tolist() == [[True, True, True], [True, False, False]]
