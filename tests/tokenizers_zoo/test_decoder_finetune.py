"""Decoder fine-tuning on frozen codes (``train.trainable: decoder``, ``fourm-tokenizer finetune-decoder``):
the tokens stay exactly those of the starting tokenizer, only the decoder side learns."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from fourm.cli.tokenizer import main
from fourm.cli.tokenizer_decoder import decoder_config
from fourm.errors import FourmError
from fourm.testing.tokenizers import toy_config
from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig
from tokenizers_zoo.image.trainer import sample_batch, setup_training, start_from, train_image_tokenizer


def samples(n: int, size: int = 32, seed: int = 0) -> list[dict]:
    """Raw rgb samples: one coloured rectangle on grey."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb = np.full((size, size, 3), 90, np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        h, w = rng.integers(size // 4, size // 2, 2)
        rgb[y : y + h, x : x + w] = rng.integers(0, 256, 3)
        out.append({"id": f"s{i}", "rgb": rgb})
    return out


def trained_source(tmp_path) -> ImageTokenizer:
    cfg = toy_config("rgb", "train.batch_size=8", "train.eval_every=100", "train.eval_samples=4", "train.warmup_steps=1")
    data = samples(20)
    train_image_tokenizer(cfg, data[:16], data[16:], tmp_path / "source", steps=4, progress=False)
    tok = ImageTokenizer.from_pretrained(tmp_path / "source" / "last")
    tok.quantizer.disabled[[3, 5]] = True  # as fourm-tokenizer prune leaves it
    tok.cfg.quantizer = dataclasses.replace(tok.cfg.quantizer, disabled_codes=(3, 5))
    return tok


def encoder_side(tok: ImageTokenizer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tok.state_dict().items() if k.startswith(("encoder.", "quantizer."))}


@pytest.mark.parametrize("wider", [False, True])
def test_decoder_finetune_keeps_the_tokens_and_trains_the_decoder(tmp_path, wider):
    source = trained_source(tmp_path)
    data = samples(20, seed=1)
    images = source.preprocess([s["rgb"] for s in data])
    tokens_before = source.encode(images)
    frozen_before = encoder_side(source)
    overrides = ["decoder_width=12", "decoder_res_blocks=2"] if wider else []
    cfg = ImageTokenizerConfig.from_dict(decoder_config(source.cfg.to_dict(), [*overrides, "train.batch_size=8",
                                                                             "train.eval_every=100", "train.lr=0.01"]))  # fmt: skip
    result = train_image_tokenizer(cfg, data[:16], data[16:], tmp_path / "ft", steps=6, progress=False, init=source)
    assert len(result["losses"]) == 6
    tuned = ImageTokenizer.from_pretrained(tmp_path / "ft" / "last")
    assert torch.equal(tuned.encode(images), tokens_before)  # same codes, same disabled ids
    for name, value in encoder_side(tuned).items():
        assert torch.equal(value, frozen_before[name]), name
    assert tuple(tuned.cfg.quantizer.disabled_codes) == (3, 5)
    assert torch.nonzero(tuned.quantizer.disabled).flatten().tolist() == [3, 5]
    assert tuned.cfg.decoder_shape == ((12, 2) if wider else (source.cfg.width, source.cfg.num_res_blocks))
    if not wider:  # started from the source's decoder, then moved by training
        moved = [not torch.equal(a, b) for a, b in zip(tuned.decoder.parameters(), source.decoder.parameters())]
        assert any(moved)
    assert tuned.decoder.conv_out.in_channels == (12 if wider else source.cfg.width)


def test_frozen_encoder_stays_in_eval_mode_without_gradients(tmp_path):
    tok = trained_source(tmp_path)
    tok.freeze_encoder()
    tok.train()
    assert tok.training and tok.decoder.training
    assert not tok.encoder.training and not tok.quantizer.training
    loss, logs = tok.loss(tok.preprocess([s["rgb"] for s in samples(4)]), step=0)
    loss.backward()
    assert all(p.grad is None for p in tok.encoder.parameters())
    assert all(p.grad is None for p in tok.quantizer.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tok.decoder.parameters())
    assert logs["loss"] == pytest.approx(logs["recon"])  # the constant codebook term is left out


def test_decoder_only_needs_a_starting_tokenizer(tmp_path):
    cfg = toy_config("rgb", "train.trainable=decoder")
    data = samples(6)
    with pytest.raises(FourmError, match="needs a trained tokenizer to start from"):
        train_image_tokenizer(cfg, data[:4], data[4:], tmp_path, steps=1, progress=False)


def test_start_from_refuses_another_encoder(tmp_path):
    source = trained_source(tmp_path)
    other = ImageTokenizer(toy_config("rgb", "width=16"))
    with pytest.raises(FourmError, match="encoder/quantiser differ"):
        start_from(other, source)


def test_decoder_config_refuses_encoder_side_overrides():
    base = toy_config("rgb").to_dict()
    with pytest.raises(FourmError, match="'quantizer.codebook_size' cannot change"):
        decoder_config(base, ["quantizer.codebook_size=32"])
    with pytest.raises(FourmError, match="'width' cannot change"):
        decoder_config(base, ["width=64"])
    data = decoder_config(base, ["decoder_width=16", "loss.detail_weight=2", "train.lr=0.01"])
    assert data["train"]["trainable"] == "decoder" and data["decoder_width"] == 16


def test_decoder_shape_fields_are_validated():
    with pytest.raises(FourmError, match="decoder_width is for architectures conv and vqvae2"):
        toy_config("rgb_vit", "decoder_width=16")
    with pytest.raises(FourmError, match="decoder_res_blocks must be >= 1"):
        toy_config("rgb", "decoder_res_blocks=0")


def test_finetune_decoder_cli(tmp_path, capsys):
    from fourm.data.raw_dataset import write_raw_dataset

    source = trained_source(tmp_path)
    source.save_pretrained(tmp_path / "src")
    data = samples(12, seed=2)
    write_raw_dataset(tmp_path / "data", {"train": data[:8], "val": data[8:]}, 32, ("id", "rgb"))
    out = tmp_path / "dec"
    args = ["finetune-decoder", "--tokenizer", str(tmp_path / "src"), "--data", str(tmp_path / "data"), "--out", str(out)]
    assert main([*args, "--steps", "2", "train.batch_size=4", "train.eval_samples=4"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-2])
    assert summary["step"] == 2
    tuned = ImageTokenizer.from_pretrained(out / "tokenizer")
    images = source.preprocess([s["rgb"] for s in data])
    assert torch.equal(tuned.encode(images), source.encode(images))
    assert main([*args, "--overwrite", "--steps", "1", "quantizer.beta=0.5"]) == 2
    err = capsys.readouterr().err
    assert "'quantizer.beta' cannot change" in err and len(err.strip().splitlines()) == 1


def test_noisy_indices_swap_the_asked_share_for_enabled_codes(tmp_path):
    tok = trained_source(tmp_path)  # codes 3 and 5 disabled
    indices = torch.zeros(64, 8, 8, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(tok.noisy_indices(indices, 0.0, gen), indices)
    noisy = tok.noisy_indices(indices, 0.3, gen)
    swapped = noisy != 0
    assert 0.25 < swapped.float().mean() < 0.31  # 0.3 minus the draws that land on code 0 again
    everything = tok.noisy_indices(indices, 0.999, gen)
    assert not torch.isin(everything, torch.tensor([3, 5])).any()
    assert len(torch.unique(everything)) == tok.codebook_size - 2


def test_token_noise_feeds_the_decoder_swapped_codes(tmp_path):
    tok = trained_source(tmp_path)
    tok.freeze_encoder()
    tok.train()
    images = tok.preprocess([s["rgb"] for s in samples(4)])
    torch.manual_seed(0)
    clean, _ = tok.loss(images, step=0)
    tok.cfg.train.token_noise = 0.9
    torch.manual_seed(0)
    noisy, _ = tok.loss(images, step=0)
    assert float(noisy.detach()) > float(clean.detach())
    tok.eval()  # evaluation decodes the true codes
    clean_eval, _ = tok.loss(images, step=0)
    assert float(clean_eval.detach()) == pytest.approx(float(clean.detach()), rel=1e-5)


def test_token_noise_needs_decoder_training():
    with pytest.raises(FourmError, match="token_noise > 0 needs train.trainable 'decoder'"):
        toy_config("rgb", "train.token_noise=0.1")
    with pytest.raises(FourmError, match=r"token_noise must be in \[0, 1\)"):
        toy_config("rgb", "train.token_noise=1.0", "train.trainable=decoder")


def test_ground_noise_swaps_only_ground_codes_for_ground_codes(tmp_path):
    tok = trained_source(tmp_path)
    gen = torch.Generator().manual_seed(0)
    indices = torch.arange(2 * 4 * 4).view(2, 4, 4) + 100  # every position its own code
    ground = torch.zeros(2, 4, 4, dtype=torch.bool)
    ground[:, :2] = True  # the top half of each map is ground
    noisy = tok.noisy_indices(indices, 0.999, gen, ground=ground)
    assert torch.equal(noisy[~ground], indices[~ground])  # objects keep their codes
    assert torch.isin(noisy[ground], indices[ground]).all()  # ground gets the batch's ground codes
    assert (noisy[ground] != indices[ground]).float().mean() > 0.8
    assert torch.equal(tok.noisy_indices(indices, 0.999, gen, ground=torch.zeros_like(ground)), indices)


def test_ground_patches_are_the_patches_of_class_zero_only(tmp_path):
    tok = trained_source(tmp_path)
    f = tok.cfg.downsample
    classes = torch.zeros(1, 2 * f, 3 * f, dtype=torch.long)
    classes[0, f + 1, 2] = 4  # one object pixel in patch (1, 0)
    classes[0, 0, 3 * f - 1] = 1  # and one in patch (0, 2)
    expected = torch.tensor([[[True, True, False], [False, True, True]]])
    assert torch.equal(tok.ground_patches(classes), expected)


def test_ground_noise_loss_needs_the_class_map_and_the_rate():
    cfg = toy_config("rgb", "train.token_noise=0.5", "train.trainable=decoder", "train.token_noise_ground=semseg")
    assert cfg.train.token_noise_ground == "semseg"
    with pytest.raises(FourmError, match="token_noise_ground needs train.token_noise > 0"):
        toy_config("rgb", "train.trainable=decoder", "train.token_noise_ground=semseg")


def test_ground_noise_training_reads_and_flips_the_class_map(tmp_path):
    source = trained_source(tmp_path)
    data = samples(20, seed=2)
    for s in data:  # the class map: 1 where the rectangle is (not the grey 90)
        s["semseg"] = (np.abs(s["rgb"].astype(int) - 90).sum(-1) > 0).astype(np.uint8)
    cfg = ImageTokenizerConfig.from_dict(decoder_config(source.cfg.to_dict(), [
        "train.batch_size=8", "train.eval_every=100", "train.token_noise=0.5", "train.token_noise_ground=semseg"]))  # fmt: skip
    setup = setup_training(cfg, np.stack([s["rgb"] for s in data]), source)
    batch = sample_batch(setup.tokenizer, np.stack([s["rgb"] for s in data]), cfg.train, np.random.default_rng(0),
                         torch.Generator().manual_seed(0), ground_arrays=np.stack([s["semseg"] for s in data]))  # fmt: skip
    grey = (batch["rgb"] - (90 / 127.5 - 1)).abs().sum(1) < 1e-4
    assert torch.equal(batch["semseg"] == 0, grey)  # the map still matches its (possibly flipped) image
    result = train_image_tokenizer(cfg, data[:16], data[16:], tmp_path / "ft", steps=3, progress=False, init=source)
    assert len(result["losses"]) == 3
    source.freeze_encoder()
    source.train()
    source.cfg.train.token_noise, source.cfg.train.token_noise_ground = 0.5, "semseg"
    with pytest.raises(FourmError, match="needs the 'semseg' class map in the batch"):
        source.loss(batch["rgb"], step=0)


def test_start_from_copies_a_reshaped_decoder_not_at_all(tmp_path):
    """More res blocks renumber the decoder's layers: layers whose shapes happen to agree must not be
    filled with the source's weights of other layers; the decoder starts fresh, whole."""
    source = trained_source(tmp_path)
    deeper = ImageTokenizer(toy_config("rgb", "decoder_res_blocks=2"))
    fresh = {k: v.clone() for k, v in deeper.state_dict().items()}
    given = source.state_dict()
    coincide = [k for k, v in fresh.items() if k.startswith("decoder.") and k in given and given[k].shape == v.shape]
    assert coincide  # the case that used to be copied: same name and shape, another layer
    left = start_from(deeper, source)
    after = deeper.state_dict()
    assert set(left) == {k for k in fresh if k.startswith("decoder.")}
    for name in left:
        assert torch.equal(after[name], fresh[name]), name
    for name, value in encoder_side(source).items():
        assert torch.equal(after[name], value), name
    same = ImageTokenizer(toy_config("rgb"))
    assert start_from(same, source) == []
    assert all(torch.equal(v, given[k]) for k, v in same.state_dict().items())
