"""Write the DiVAE parity fixtures of ``tests/convert/test_ml4m_divae.py`` from apple/ml-4m's own code.

    python bench/ml4m_parity/make_divae_fixtures.py --ml4m /path/to/ml-4m --out tests/fixtures/ml4m/divae \\
        [--commit <ml-4m commit>]

Run it in a side environment, never in fourm's: ml-4m's package is also called ``fourm``. What it needs
besides torch / numpy / safetensors: ml-4m's pins ``diffusers==0.20.0`` and ``huggingface_hub<=0.24``
(its scheduler modules import ``diffusers.utils.randn_tensor``), and ``einops``; transformers must not
be importable (diffusers 0.20 would import it and fail on a new one). One way (torch from fourm's venv,
through a directory of symbolic links that leaves out transformers, diffusers and huggingface_hub)::

    python -m venv /tmp/ml4m_divae_venv
    /tmp/ml4m_divae_venv/bin/pip install diffusers==0.20.0 huggingface_hub==0.24.0
    mkdir /tmp/ml4m_divae_venv/deps && for f in .venv/lib/python3.11/site-packages/*; do
        case $(basename $f) in transformers*|diffusers*|huggingface_hub*|__editable__*|*.pth) ;;
        *) ln -s $PWD/$f /tmp/ml4m_divae_venv/deps/ ;; esac; done
    echo /tmp/ml4m_divae_venv/deps > /tmp/ml4m_divae_venv/lib/python3.11/site-packages/deps.pth

The process puts the ml-4m tree first on ``sys.path`` and drops every path holding this project's
``fourm``; it stops if ``fourm`` resolves anywhere else. ml-4m's sources are used unmodified, with two
run-time substitutions:

* ``fourm.utils`` (ml-4m's training / data utilities: torchvision, cv2, webdataset, boto3, ...) is
  replaced by a package holding only ml-4m's own ``fourm/utils/misc.py``, the one module the DiVAE path
  uses (``to_2tuple`` for the sampling size, ``denormalize`` for ``undo_std``); its torchvision import
  gets a stand-in ``normalize`` (never called: the fixtures have ``undo_std=False``).
* the presets are shrunk so that the weights stay small: ``vit_b_enc`` builds ml-4m's ``ViTEncoder``
  with width 32, 2 blocks, 2 heads (as ``tests/convert/ml4m_vqvae_reference.TINY_VIT``) and
  ``unet_patched`` builds ml-4m's ``PatchedUNetCondCat`` with patch 4, 32 channels, channel_mult (1, 1),
  one res block per level and attention at 2x downsampling (instead of 256 channels, (1, 2, 2, 2), 3
  blocks, attention at 4x and 8x). The tests patch fourm's preset tables the same way.

Outputs (all under ``--out``):

* ``model/config.json`` + ``model/model.safetensors``: the DiVAE in ml-4m's hub layout (the keyword
  arguments of ``DiVAE`` and its state dict, stored in fp16; every tensor, zero-initialised output
  convolutions included, is random). Loaded back with ``DiVAE.from_pretrained`` as a check.
* ``reference.safetensors``: ``images`` (2, 3, 32, 32) in [-1, 1], ``ids`` (2, 16) from ml-4m's
  ``tokenize``, and per decoding case ``<case>.output`` (ml-4m's ``decode_tokens`` output, fp32),
  ``<case>.alphas_cumprod`` and ``<case>.timesteps`` (its scheduler's).
* ``cases.json``: the ml-4m commit, the shrunk presets, and per case the config changes (the case's
  DiVAE is built from ``model/config.json`` with them, same weights), steps, seed, image size and
  timestep mode of the call.
* ``released_decoder_layout.json``: {key: shape} of the decoder of a released-size DiVAE (the real
  ``unet_patched``: RGB, latent 32), built on the meta device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import types
from pathlib import Path

TINY_VIT = {"dim_tokens": 32, "depth": 2, "num_heads": 2}
TINY_UNET = {"patch_size": 4, "model_channels": 32, "num_res_blocks": 1, "attention_resolutions": [2],
             "channel_mult": [1, 1]}
CONFIG = {  # the keyword arguments of ml-4m's DiVAE, as a released config.json holds them
    "image_size": 32, "n_channels": 3, "enc_type": "vit_b_enc", "dec_type": "unet_patched", "post_mlp": True,
    "patch_size": 8, "quant_type": "lucid", "codebook_size": 64, "latent_dim": 8, "norm_codes": True,
    "num_train_timesteps": 1000, "scheduler": "ddpm", "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction", "clip_sample": False, "thresholding": True, "zero_terminal_snr": True,
    "cls_free_guidance_dropout": 0.0, "masked_cfg": False, "conditioning": "concat", "sync_codebook": False,
}
# decoding cases: config changes, then the arguments of decode_tokens
CASES = {
    # DiVAE's own defaults: DDPM (leading spacing, noise from the generator at every step), cosine betas
    # with zero terminal SNR, v-prediction, dynamic thresholding
    "ddpm_default": {"config": {}, "steps": 4, "seed": 0, "image_size": 32, "mode": "trailing"},
    # DDIM, trailing spacing with a step count that does not divide 1000 (ml-4m's integer step ratio
    # gives 4 timesteps for 3 steps), linear betas, x0-prediction, clipping
    "ddim_trailing": {"config": {"scheduler": "ddim", "beta_schedule": "linear", "prediction_type": "sample",
                                 "clip_sample": True, "thresholding": False, "zero_terminal_snr": False},
                      "steps": 3, "seed": 1, "image_size": 32, "mode": "trailing"},
    # DDIM, linspace spacing, shifted cosine schedule (alphas_cumprod in log-SNR space), v-prediction,
    # decoded at 48 px (a 12x12 UNet grid under the 4x4 tokens)
    "ddim_shifted": {"config": {"scheduler": "ddim", "beta_schedule": "shifted_cosine:0.5"},
                     "steps": 5, "seed": 2, "image_size": 48, "mode": "linspace"},
    # DDPM with the sigmoid schedule, epsilon-prediction, clipping, 3 steps (leading: 666, 333, 0)
    "ddpm_sigmoid_eps": {"config": {"beta_schedule": "sigmoid", "prediction_type": "epsilon", "clip_sample": True,
                                    "thresholding": False, "zero_terminal_snr": False},
                         "steps": 3, "seed": 3, "image_size": 32, "mode": "trailing"},
}


def _isolate(ml4m: Path) -> None:
    """ml-4m first on sys.path, this project's fourm nowhere; ml-4m's light ``fourm.utils``."""
    sys.path[:] = [str(ml4m)] + [p for p in sys.path if not (Path(p or ".") / "fourm" / "__init__.py").exists()]
    import fourm

    where = [str(Path(p).resolve()) for p in fourm.__path__]
    if where != [str((ml4m / "fourm").resolve())]:
        raise SystemExit(f"'fourm' resolves to {where}, not to ml-4m's {ml4m / 'fourm'}")
    try:
        import torchvision.transforms.functional  # noqa: F401
    except ImportError:
        import torch

        tv, tr, tf = (types.ModuleType(n) for n in ("torchvision", "torchvision.transforms",
                                                    "torchvision.transforms.functional"))

        def normalize(x, mean, std):
            shape = (-1, 1, 1)
            return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)

        tf.normalize, tr.functional, tv.transforms = normalize, tf, tr
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": tf})
    utils = types.ModuleType("fourm.utils")
    utils.__path__ = [str(ml4m / "fourm" / "utils")]
    sys.modules["fourm.utils"] = utils
    spec = importlib.util.spec_from_file_location("fourm.utils.misc", ml4m / "fourm" / "utils" / "misc.py")
    misc = importlib.util.module_from_spec(spec)
    sys.modules["fourm.utils.misc"] = misc
    spec.loader.exec_module(misc)
    for name in ("to_2tuple", "denormalize"):
        setattr(utils, name, getattr(misc, name))


def _released_layout() -> dict[str, list[int]]:
    """{key: shape} of the decoder of a released DiVAE (ml-4m's unpatched ``unet_patched`` preset, RGB,
    latent_dim 32, 224 px), built on the meta device (no memory): checks the converter's key map at the
    real size, which the small fixture cannot (no width changes between levels, one attention level)."""
    import fourm.vq.models.unet.unet as unet
    import torch

    with torch.device("meta"):
        decoder = unet.unet_patched(in_channels=3, out_channels=3, cond_channels=32, image_size=224)
    return {f"decoder.{k}": list(v.shape) for k, v in decoder.state_dict().items()}


def _shrink_presets() -> None:
    import fourm.vq.models.unet.unet as unet
    import fourm.vq.models.vit_models as vit_models

    def vit_b_enc(in_channels, patch_size, resolution, patch_proj=True, post_mlp=False, **kwargs):
        return vit_models.ViTEncoder(in_channels=in_channels, patch_size=patch_size, resolution=resolution,
                                     mlp_ratio=4, qkv_bias=True, patch_proj=patch_proj, post_mlp=post_mlp,
                                     **TINY_VIT, **kwargs)

    def unet_patched(**kwargs):
        return unet.PatchedUNetCondCat(**{**TINY_UNET, "attention_resolutions": list(TINY_UNET["attention_resolutions"]),
                                          "channel_mult": tuple(TINY_UNET["channel_mult"])}, **kwargs)

    vit_models.vit_b_enc = vit_b_enc
    unet.unet_patched = unet_patched


def _randomise(model, seed: int) -> None:
    """Every parameter random (ml-4m zero-initialises the UNet's output convolutions), then rounded
    to fp16 so that the stored fp16 weights are exactly the ones the reference ran with. The sin-cos
    position table and the codebook keep ml-4m's own initialisation."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("pos_emb") or "quantize" in name:
                continue
            if p.dim() == 1:
                norm = any(k in name for k in ("norm", "in_layers.0", "out_layers.0", "out.0"))
                p.copy_((1.0 if norm and name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        model.decoder.out[2].weight.mul_(0.1)  # predictions of order 0.5, mostly inside the clipping range
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())


def _spread_codebook(model, images, seed: int) -> None:
    """Codes near the latents of the fixture images (plus noise), so that their ids vary: a random
    codebook in a random latent space gives nearly one id everywhere."""
    import torch

    with torch.no_grad():
        latents = model.quant_proj(model.encoder(model.prepare_input(images)))  # (B, D, h, w)
        latents = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        g = torch.Generator().manual_seed(seed)
        embed = model.quantize._codebook.embed
        picks = latents[torch.randint(0, latents.shape[0], (embed.shape[-2],), generator=g)]
        codes = picks + 0.5 * picks.norm(dim=-1, keepdim=True) * torch.randn(picks.shape, generator=g) / picks.shape[-1] ** 0.5
        embed.copy_(torch.nn.functional.normalize(codes, dim=-1).reshape(embed.shape).half().float())


def _commit(ml4m: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(ml4m), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml4m", type=Path, required=True, help="root of an apple/ml-4m source tree")
    parser.add_argument("--out", type=Path, required=True, help="fixture directory (tests/fixtures/ml4m/divae)")
    parser.add_argument("--commit", default=None, help="ml-4m commit of the tree (default: git rev-parse)")
    args = parser.parse_args()
    ml4m = args.ml4m.resolve()
    _isolate(ml4m)
    layout = _released_layout()
    _shrink_presets()

    import torch
    from fourm.vq.vqvae import DiVAE
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = DiVAE(**CONFIG).eval()
    _randomise(model, seed=0)
    g = torch.Generator().manual_seed(123)
    images = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    _spread_codebook(model, images, seed=1)
    state = {k: v.detach().half().contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in model.state_dict().items()}
    hub = args.out / "model"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    save_file(state, str(hub / "model.safetensors"), metadata={"format": "pt"})

    # the hub layout loads back through ml-4m's own PyTorchModelHubMixin path
    model = DiVAE.from_pretrained(str(hub)).eval()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        tokens = model.tokenize(images)  # (B, 4, 4)
        out["images"], out["ids"] = images, tokens.reshape(tokens.shape[0], -1).long()
        weights = {k: v.float() for k, v in model.state_dict().items()}
        for name, case in CASES.items():
            m = DiVAE(**{**CONFIG, **case["config"]}).eval()
            m.load_state_dict(weights)
            gen = torch.Generator().manual_seed(case["seed"])
            dec = m.decode_tokens(tokens, timesteps=case["steps"], generator=gen, image_size=case["image_size"],
                                  verbose=False, scheduler_timesteps_mode=case["mode"])
            if not torch.isfinite(dec).all():
                raise SystemExit(f"case {name}: ml-4m's output is not finite")
            out[f"{name}.output"] = dec.float().contiguous()
            out[f"{name}.alphas_cumprod"] = m.noise_scheduler.alphas_cumprod.float().contiguous()
            out[f"{name}.timesteps"] = m.noise_scheduler.timesteps.long().contiguous()
            print(f"{name}: timesteps {m.noise_scheduler.timesteps.tolist()}, output range "
                  f"[{dec.min():.3f}, {dec.max():.3f}], {(dec.abs() >= 1).float().mean():.1%} at +-1")
    save_file(out, str(args.out / "reference.safetensors"), metadata={"format": "pt"})
    record = {"ml4m_commit": _commit(ml4m, args.commit), "generator": "bench/ml4m_parity/make_divae_fixtures.py",
              "presets": {"vit_b_enc": TINY_VIT, "unet_patched": TINY_UNET}, "config": CONFIG, "cases": CASES}
    (args.out / "cases.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "released_decoder_layout.json").write_text(json.dumps(layout) + "\n")
    for f in args.out.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"ids {out['ids'].tolist()}")
    print(f"fixtures written to {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
