"""Pruning near-duplicate VQ codes: the lookup skips disabled codes, the greedy rule keeps the most
used code of each tight group, and a pruned tokenizer saves, loads and never emits a disabled id."""

import pytest
import torch

from fourm.errors import FourmError
from fourm.testing.tokenizers import random_images, toy_tokenizer
from tokenizers_zoo.image.tokenizer import ImageTokenizer
from tokenizers_zoo.quantizers import QuantizerConfig, VectorQuantizer, build_quantizer
from tokenizers_zoo.quantizers.pruning import greedy_prune, prune_near_duplicate_codes
from tokenizers_zoo.quantizers.vq import nearest_code


def test_nearest_code_skips_disabled_codes():
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    x = torch.tensor([[0.1, 0.0], [0.9, 0.1], [4.0, 4.0]])
    assert nearest_code(x, codes).tolist() == [0, 1, 2]
    disabled = torch.tensor([True, False, False])
    assert nearest_code(x, codes, disabled).tolist() == [1, 1, 2]  # 0's vectors go to the next nearest


def test_greedy_prune_keeps_the_most_used_code_of_each_group():
    codes = torch.tensor([[0.0, 0.0], [0.05, 0.0], [0.0, 0.05], [3.0, 0.0], [3.05, 0.0], [0.0, 3.0]])
    counts = torch.tensor([5.0, 9.0, 1.0, 2.0, 7.0, 1.0])
    out = greedy_prune(codes, counts, radius=0.5, disabled=torch.zeros(6, dtype=torch.bool))
    assert out.tolist() == [True, False, True, True, False, False]
    # an already disabled code stays disabled and is not a keeper
    pre = torch.tensor([False, True, False, False, False, False])
    out = greedy_prune(codes, counts, radius=0.5, disabled=pre)
    assert out.tolist() == [False, True, True, True, False, False]


def test_vq_never_emits_or_restarts_disabled_codes():
    torch.manual_seed(0)
    q = VectorQuantizer(4, 8, dead_code_steps=1, disabled_codes=(0, 3))
    z = torch.randn(2, 4, 5, 5)
    for _ in range(3):
        q.train()(z)
    codes_before = q.embedding.detach().clone()
    out = q.eval()(z)
    assert not set(out.indices.flatten().tolist()) & {0, 3}
    assert not q.dead_mask()[[0, 3]].any()
    assert torch.equal(q.embedding.detach()[[0, 3]], codes_before[[0, 3]])


def test_disabled_codes_config_checks():
    with pytest.raises(FourmError, match="disabled_codes"):
        build_quantizer(QuantizerConfig(kind="vq", dim=4, codebook_size=4, disabled_codes=(4,)))
    with pytest.raises(FourmError, match="every code"):
        build_quantizer(QuantizerConfig(kind="vq", dim=4, codebook_size=2, disabled_codes=(0, 1)))
    with pytest.raises(FourmError, match="vq option"):
        build_quantizer(QuantizerConfig(kind="fsq", dim=None, disabled_codes=(1,)))


def test_pruned_tokenizer_round_trips_and_avoids_disabled_ids(tmp_path):
    tok = toy_tokenizer("rgb")
    images = random_images(tok, n=8)
    # make near-duplicates: copy code 1 (slightly moved) over codes 2..9
    with torch.no_grad():
        emb = tok.quantizer.embedding
        emb[2:10] = emb[1] + 1e-4 * torch.randn(8, emb.shape[1])
    report = prune_near_duplicate_codes(tok, images, distance=1.0)
    assert report.removed >= 1 and report.kept == 64 - len(tok.cfg.quantizer.disabled_codes)
    disabled = set(tok.cfg.quantizer.disabled_codes)
    assert len(disabled & set(range(1, 10))) >= 8  # at most one of the 9 copies of code 1 survives
    tok.save_pretrained(tmp_path / "t")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "t")
    assert set(loaded.cfg.quantizer.disabled_codes) == disabled
    ids = loaded.encode(images)
    assert not set(ids.flatten().tolist()) & disabled
    assert torch.equal(ids, tok.encode(images))


def test_prune_refuses_bad_arguments():
    tok = toy_tokenizer("rgb")
    with pytest.raises(FourmError, match="distance"):
        prune_near_duplicate_codes(tok, random_images(tok), distance=0)
    with pytest.raises(FourmError, match="at least one image"):
        prune_near_duplicate_codes(tok, random_images(tok)[:0], distance=1.0)
