"""Pooled and predicted embeddings on toy models: padding invariance, references, centring, errors."""

import pytest
import torch
import torch.nn.functional as F

from fourm.errors import FourmError
from fourm.generation.conditions import GivenTokens
from fourm.retrieval.embed import NO_VECTOR_MODALITY, PooledEmbedder, PredictedEmbedder
from fourm.retrieval.items import pack_items, signature

CAPTIONS = ["a small red circle", "a large blue square is to the left of a small green star", "one pink hexagon"]


def caption_ids(pipe, text):
    return pipe.tokenize("caption", [text])[0]  # (L,) ending in [EOS], padded with [PAD]


def rgb_ids(seed, n=16):
    return torch.randint(64, (n,), generator=torch.Generator().manual_seed(seed))


def items(pipe):
    return [{"caption": caption_ids(pipe, t)} for t in CAPTIONS] + [{"rgb": rgb_ids(i)} for i in range(3)]


def test_pack_items_trims_sequences_and_pads(pipe):
    ids = caption_ids(pipe, CAPTIONS[0])
    n = int((ids != 0).sum())  # tokens up to and including [EOS]
    enc = pack_items(pipe.model.config, [{"caption": ids}, {"caption": ids[:n]}, {"rgb": rgb_ids(0), "caption": ids}])
    assert enc.valid.sum(dim=1).tolist() == [n, n, 16 + n]
    assert enc.width == 16 + n
    assert signature({"caption": 0, "rgb": 0}, pipe.model.config) == "rgb+caption"  # model order


@pytest.mark.parametrize("center", [False, True])
def test_pooled_ignores_padding(pipe, center):
    emb = PooledEmbedder(pipe.model, center=center, normalize=center, autocast=False)
    if center:
        emb.fit_centers(items(pipe))
    short = {"caption": caption_ids(pipe, CAPTIONS[0])}
    alone = emb([short])
    in_batch = emb([short, {"caption": caption_ids(pipe, CAPTIONS[1])}, {"rgb": rgb_ids(1)}])[:1]  # padded row
    ids = short["caption"]
    n = int((ids != 0).sum())
    garbage = torch.where(torch.arange(ids.numel()) < n, ids, 7)  # junk ids in the invalid columns
    explicit = emb([{"caption": GivenTokens.at(garbage, valid=torch.arange(ids.numel()) < n)}])
    assert torch.allclose(alone, in_batch, atol=1e-5)
    assert torch.allclose(alone, explicit, atol=1e-5)
    assert not torch.allclose(alone, emb([{"caption": caption_ids(pipe, CAPTIONS[2])}]), atol=1e-3)


def test_pooled_ignores_padding_under_autocast(pipe):
    emb = PooledEmbedder(pipe.model, center=False, normalize=True, autocast=True)
    short = {"caption": caption_ids(pipe, CAPTIONS[0])}
    alone = emb([short])
    in_batch = emb([short, {"rgb": rgb_ids(2)}])[:1]
    assert alone.dtype == torch.float32
    assert F.cosine_similarity(alone, in_batch).item() > 0.999


def test_plain_mean_pooling_matches_reference(pipe):
    model = pipe.model
    item = {"rgb": rgb_ids(3), "caption": caption_ids(pipe, CAPTIONS[1])}
    enc = pack_items(model.config, [item])
    with torch.no_grad():
        out = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)[0]  # (Ne, D)
    want = out[enc.valid[0]].mean(dim=0)
    got = PooledEmbedder(model, center=False, normalize=False, autocast=False)([item])[0]
    assert torch.allclose(got, want, atol=1e-5)


def test_centred_normalised_combination_matches_reference(pipe):
    model = pipe.model
    emb = PooledEmbedder(model, autocast=False)
    centers = emb.fit_centers(items(pipe))
    assert set(centers) == {"rgb", "caption"}
    item = {"rgb": rgb_ids(4), "caption": caption_ids(pipe, CAPTIONS[2])}
    enc = pack_items(model.config, [item])
    with torch.no_grad():
        out = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)[0]
    parts = []
    for name in ("rgb", "caption"):
        rows = enc.valid[0] & (enc.modality[0] == model.config.modality_index(name))
        parts.append(F.normalize(out[rows].mean(dim=0) - centers[name], dim=0))
    want = F.normalize(torch.stack(parts).mean(dim=0), dim=0)
    got = emb([item])[0]
    assert torch.allclose(got, want, atol=1e-5)
    assert got.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_centres_remove_the_modality_mean(pipe):
    ref = items(pipe)
    emb = PooledEmbedder(pipe.model, center=True, normalize=False, autocast=False)
    emb.fit_centers(ref)
    out = emb(ref)
    assert out[:3].mean(dim=0).abs().max() < 1e-4  # centred captions average to zero
    assert out[3:].mean(dim=0).abs().max() < 1e-4
    raw = PooledEmbedder(pipe.model, center=False, normalize=False, autocast=False)(ref)
    assert raw[:3].mean(dim=0).abs().max() > 1e-2  # (without centring they do not)


def test_pooled_needs_centres(pipe):
    emb = PooledEmbedder(pipe.model, autocast=False)
    with pytest.raises(FourmError, match="no centering statistics for modality 'caption'"):
        emb([{"caption": caption_ids(pipe, CAPTIONS[0])}])


def predicted_reference(pipe, item, expected: bool = False):
    """Prediction by hand: one decoder pass over all vector positions, then argmax over each
    position's codebook (greedy) or its softmax-weighted mean code (expected), decode, l2."""
    model, name = pipe.model, "caption_embedding"
    length, index = model.config.modalities[name].length, model.config.modality_index(name)
    enc = pack_items(model.config, [item])
    with torch.no_grad():
        ctx = model.encode(enc.tokens, enc.modality, enc.position, enc.valid)
        pos = torch.arange(length)[None]
        hidden = model.decode(ctx, enc.valid, torch.zeros_like(pos), torch.full_like(pos, index), pos,
                              torch.ones_like(pos, dtype=torch.bool))
        logits = hidden @ model.head_weight(name).T  # (1, L, V)
        codebook = pipe.codecs[name].tokenizer.cfg.codebook_size
        own = torch.arange(logits.shape[-1])[None, :] // codebook == torch.arange(length)[:, None]  # (L, V)
        tok = pipe.codecs[name].tokenizer
        if not expected:
            tokens = logits.masked_fill(~own, float("-inf")).argmax(dim=-1)
            return F.normalize(tok.decode(tokens), dim=-1)[0]
        mean_codes = []
        for j, q in enumerate(tok.quantizers):
            p = logits[0, j, j * codebook : (j + 1) * codebook].softmax(-1)  # (C,)
            table = torch.stack([q.indices_to_latents(torch.tensor([[c]]))[0, :, 0] for c in range(codebook)])
            mean_codes.append(p @ table)
        return F.normalize(tok.decoder(torch.cat(mean_codes)[None]), dim=-1)[0]


@pytest.mark.parametrize("decoding", ["greedy", "expected"])
def test_predicted_matches_reference_and_has_unit_norm(pipe, decoding):
    tok = pipe.codecs["caption_embedding"].tokenizer
    emb = PredictedEmbedder(pipe.model, tok, decoding=decoding, autocast=False, batch_size=2)
    its = items(pipe)
    out = emb(its)
    assert out.shape == (len(its), 16) and emb.dim == 16
    assert torch.allclose(out.norm(dim=1), torch.ones(len(its)), atol=1e-5)
    for i in (0, 4):
        assert torch.allclose(out[i], predicted_reference(pipe, its[i], expected=decoding == "expected"), atol=1e-5)
    assert not torch.allclose(out[0], out[4], atol=1e-3)  # depends on the item


def test_expected_decoding_differs_from_greedy_and_is_the_default(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    its = items(pipe)
    default = PredictedEmbedder(pipe.model, tok, autocast=False)
    assert default.decoding == "expected"
    greedy = PredictedEmbedder(pipe.model, tok, decoding="greedy", autocast=False)(its)
    assert not torch.allclose(default(its), greedy, atol=1e-3)  # soft codes, not argmax codes


def test_predicted_maskgit(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    its = items(pipe)
    greedy = PredictedEmbedder(pipe.model, tok, decoding="greedy", autocast=False)(its)
    one_step = PredictedEmbedder(pipe.model, tok, decoding="maskgit", steps=1, autocast=False)(its)
    assert torch.allclose(greedy, one_step)
    steps = PredictedEmbedder(pipe.model, tok, decoding="maskgit", autocast=False)
    assert steps.steps == 4  # one token per step by default
    out = steps(its)
    assert torch.allclose(out.norm(dim=1), torch.ones(len(its)), atol=1e-5)
    assert torch.equal(out, steps(its))  # deterministic at temperature 0


def test_predicted_centres_are_per_modality_set_means(pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    its = items(pipe) + [{"caption": caption_ids(pipe, CAPTIONS[0]), "rgb": rgb_ids(7)}]
    plain = PredictedEmbedder(pipe.model, tok, autocast=False)
    raw = plain(its)  # uncentred unit vectors
    emb = PredictedEmbedder(pipe.model, tok, autocast=False, center=True)
    centers = emb.fit_centers(its)
    assert set(centers) == {"rgb", "caption", "rgb+caption"}  # model order, not the item's
    assert emb.set_key(["caption", "rgb"]) == emb.set_key(["rgb", "caption"]) == "rgb+caption"
    assert torch.allclose(centers["caption"], raw[:3].mean(dim=0), atol=1e-6)
    assert torch.allclose(centers["rgb"], raw[3:6].mean(dim=0), atol=1e-6)
    assert torch.allclose(centers["rgb+caption"], raw[6], atol=1e-6)
    out = emb(its)
    assert torch.allclose(out[:3], F.normalize(raw[:3] - centers["caption"], dim=-1), atol=1e-5)
    assert torch.allclose(out[3:6], F.normalize(raw[3:6] - centers["rgb"], dim=-1), atol=1e-5)
    # the centred vectors of the items a centre was fitted on sum to zero before normalisation
    assert torch.allclose((raw[3:6] - centers["rgb"]).sum(dim=0), torch.zeros(16), atol=1e-5)
    assert emb.describe()["center"] is True and plain.describe()["center"] is False
    again = PredictedEmbedder(pipe.model, tok, autocast=False, center=True, centers=centers)  # as stored
    assert torch.allclose(again(its[:6]), out[:6])
    with pytest.raises(FourmError, match="no centre for items of 'depth'"):
        emb([{"depth": rgb_ids(0)}])


def test_predicted_errors(pipe, plain_pipe):
    tok = pipe.codecs["caption_embedding"].tokenizer
    with pytest.raises(FourmError, match=NO_VECTOR_MODALITY):
        PredictedEmbedder(plain_pipe.model, tok)
    with pytest.raises(FourmError, match="is a sequence modality, not a vector"):
        PredictedEmbedder(pipe.model, tok, modality="caption")
    with pytest.raises(FourmError, match="unknown decoding"):
        PredictedEmbedder(pipe.model, tok, decoding="beam")
    from fourm.testing.retrieval import toy_vector_tokenizer

    with pytest.raises(FourmError, match="vector tokenizer gives 2 tokens"):
        PredictedEmbedder(pipe.model, toy_vector_tokenizer(num_tokens=2))
    emb = PredictedEmbedder(pipe.model, tok)
    with pytest.raises(FourmError, match="already holds 'caption_embedding'"):
        emb([{"caption_embedding": torch.arange(4)}])


def test_item_errors(pipe):
    emb = PooledEmbedder(pipe.model, center=False)
    with pytest.raises(FourmError, match="unknown modality 'normals'"):
        emb([{"normals": rgb_ids(0)}])
    with pytest.raises(FourmError, match="item 1 holds no modality"):
        emb([{"rgb": rgb_ids(0)}, {}])
    with pytest.raises(FourmError, match="item modality 'rgb' has 5 tokens but the image has 16"):
        emb([{"rgb": rgb_ids(0, n=5)}])
    with pytest.raises(FourmError, match="out of range"):
        emb([{"rgb": rgb_ids(0) + 100}])
