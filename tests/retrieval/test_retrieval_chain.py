"""Chained predicted embeddings (``via``): generated modalities against by-hand greedy references."""

import pytest
import torch

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.retrieval.chain import ItemCompleter
from fourm.retrieval.embed import PredictedEmbedder
from fourm.retrieval.items import pack_items
from fourm.retrieval.settings import RetrievalSettings, make_embedder
from fourm.testing.retrieval import toy_retrieval_pipeline


def rgb_ids(seed, n=16):
    return torch.randint(64, (n,), generator=torch.Generator().manual_seed(seed))


def greedy_sampler(pipe):
    plan = pipe.plan(["caption"])
    return AutoregressiveSampler(0.0, 0, 1.0, plan.sos, plan.eos, plan.pad, plan.banned, plan.min_length), plan


def greedy_caption_by_hand(pipe, item):
    """Greedy caption without the KV cache: re-decode the whole prefix each step, ban the plan's ids,
    no [EOS] before min_length, stop after [EOS]."""
    _, plan = greedy_sampler(pipe)
    model = pipe.model
    mod, index = model.config.modalities["caption"], model.config.modality_index("caption")
    enc = pack_items(model.config, [item])
    out: list[int] = []
    with torch.no_grad():
        ctx = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)
        for i in range(mod.length):
            inputs = torch.tensor([[plan.sos, *out]])
            pos = torch.arange(inputs.shape[1])[None]
            hidden = model.decode(ctx, enc.valid, inputs, torch.full_like(pos, index), pos, torch.ones_like(pos, dtype=torch.bool))
            logits = (hidden[0, -1] @ model.head_weight("caption").T).float()
            logits[plan.banned] = float("-inf")
            if i < plan.min_length:
                logits[plan.eos] = float("-inf")
            out.append(int(logits.argmax()))
            if out[-1] == plan.eos:
                break
    return torch.tensor(out)


def test_via_caption_generates_it_then_predicts_from_both(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    sampler, _ = greedy_sampler(pipe)
    plain = PredictedEmbedder(pipe.model, tok, autocast=False)
    chained = PredictedEmbedder(pipe.model, tok, autocast=False, via=["caption"], sequence_sampler=sampler, batch_size=2)
    items = [{"rgb": rgb_ids(i)} for i in range(3)]
    completed = chained.completer(items)
    for item, done in zip(items, completed):
        assert set(done) == {"rgb", "caption"} and torch.equal(done["rgb"], item["rgb"])
        assert torch.equal(done["caption"], greedy_caption_by_hand(pipe, item))
    assert all(set(item) == {"rgb"} for item in items)  # the caller's items are not changed
    out = chained(items)
    assert torch.allclose(out, plain(completed), atol=1e-6)
    assert not torch.allclose(out, plain(items), atol=1e-3)  # the generated caption conditions it
    assert chained.describe()["via"] == ["caption"] and plain.describe()["via"] == []


def test_via_leaves_items_holding_the_modality_alone(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    sampler, _ = greedy_sampler(pipe)
    caption = pipe.tokenize("caption", ["a small red circle"])[0]
    items = [{"caption": caption}, {"caption": caption, "rgb": rgb_ids(0)}]
    plain = PredictedEmbedder(pipe.model, tok, autocast=False)
    chained = PredictedEmbedder(pipe.model, tok, autocast=False, via=["caption"], sequence_sampler=sampler)
    assert torch.equal(chained(items), plain(items))


def test_via_image_modality_is_one_argmax_pass_with_one_step(pipe):
    model = pipe.model
    completer = ItemCompleter(model, ["depth"], steps=1)
    item = {"rgb": rgb_ids(3)}
    (done,) = completer([item])
    mod, index = model.config.modalities["depth"], model.config.modality_index("depth")
    enc = pack_items(model.config, [item])
    with torch.no_grad():
        ctx = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)
        pos = torch.arange(mod.length)[None]
        hidden = model.decode(ctx, enc.valid, torch.zeros_like(pos), torch.full_like(pos, index), pos,
                              torch.ones_like(pos, dtype=torch.bool))
        expected = (hidden[0] @ model.head_weight("depth").T).argmax(dim=-1)
    assert torch.equal(done["depth"], expected)
    several = ItemCompleter(model, ["depth"], steps=4)([item])[0]["depth"]
    assert several.shape == (mod.length,) and torch.equal(several, ItemCompleter(model, ["depth"], steps=4)([item])[0]["depth"])


def test_via_errors(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    sampler, _ = greedy_sampler(pipe)
    with pytest.raises(FourmError, match="'caption_embedding' is the predicted embedding itself"):
        PredictedEmbedder(pipe.model, tok, via=["caption_embedding"])
    with pytest.raises(FourmError, match="unknown modality 'normals'"):
        PredictedEmbedder(pipe.model, tok, via=["normals"])
    with pytest.raises(FourmError, match="needs a sequence sampler"):
        PredictedEmbedder(pipe.model, tok, via=["caption"])
    with pytest.raises(FourmError, match="must be greedy"):
        PredictedEmbedder(pipe.model, tok, via=["caption"], sequence_sampler=AutoregressiveSampler(1.0))
    with pytest.raises(FourmError, match="via steps must be >= 1"):
        ItemCompleter(pipe.model, ["depth"], steps=0)
    pixels = toy_retrieval_pipeline(rgb_pixels=True)
    with pytest.raises(FourmError, match="cannot generate 'rgb_pixels' first"):
        PredictedEmbedder(pixels.model, pixels.codecs["caption_embedding"].tokenizer, via=["rgb_pixels"])
    assert sampler.temperature == 0


def test_settings_build_the_chained_embedder(pipe):
    emb = make_embedder(pipe, RetrievalSettings(method="predicted", via=["caption"]))
    assert emb.completer is not None and emb.completer.via == ["caption"]
    assert emb.completer.sequence_sampler.banned == sorted(set(pipe.plan(["caption"]).banned))
    assert RetrievalSettings.from_dict(RetrievalSettings(method="predicted", via=["caption"]).to_dict()).via == ["caption"]
    with pytest.raises(FourmError, match="via .* is for the predicted method"):
        make_embedder(pipe, RetrievalSettings(method="pooled", via=["caption"]))
    with pytest.raises(FourmError, match="via_steps must be >= 1"):
        make_embedder(pipe, RetrievalSettings(method="predicted", via=["depth"], via_steps=0))
