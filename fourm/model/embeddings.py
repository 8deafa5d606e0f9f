"""Packed input embeddings of the FourM encoder and decoder, each a handful of single gathers.

All modalities share one token table (rows of modality m start at its vocabulary offset), one
fixed position table (2D sin-cos rows for image grids, N-D for a vector's ``position_grid``, 1D for
sequences and other vectors, each modality at its own row offset) and a learned modality embedding
per side (one table for both sides with ``share_modality_embeddings``). Modalities with
``positions: learned`` take their positions from a learned table per side instead (their rows of
the fixed table are zero). Encoder input = token + position + modality, where a patch modality's
"token" is its pixel patch (values 0..255 mapped to [-1, 1]) through the patch stem (a linear
projection as in 4M, or :mod:`fourm.model.patch_stem`'s conv stem; no rows in the token table), and
a continuous modality's a linear projection of its value vector
(:mod:`fourm.model.continuous`). Decoder input = (a learned mask token for image/vector targets, the
embedding of ``dec_input`` for sequence targets) + position + modality.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fourm.model.config import FourMConfig, ModalityConfig
from fourm.model.patch_stem import POSITION_MEAN_SQUARE, build_patch_stem, patch_values, reset_patch_stem
from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d, sincos_table_nd


def _offsets(sizes: list[int]) -> Tensor:
    """Exclusive cumulative sum: start row of each block."""
    return torch.tensor([0] + sizes[:-1], dtype=torch.long).cumsum(0)


def _fixed_positions(m: ModalityConfig, dim: int, image_frame: int | None = None) -> Tensor:
    """Modality ``m``'s rows (num_positions, D) of the fixed table: zero for learned positions, 2D
    sin-cos for an image (in the model's ``image_frame``), N-D over a ``position_grid``, 1D otherwise."""
    if m.learned_positions:
        return torch.zeros(m.num_positions, dim)
    if m.kind == "image":
        return sincos_table_2d(m.grid_size, dim, image_frame)
    if m.position_grid is not None:
        return sincos_table_nd(m.position_grid, dim)
    return sincos_table_1d(m.num_positions, dim)


class PackedEmbeddings(nn.Module):
    """Token, position and modality embeddings for packed rows of mixed modalities."""

    def __init__(self, config: FourMConfig) -> None:
        super().__init__()
        mods = list(config.modalities.values())
        dim = config.dim
        self.dim = dim
        self.vocab_sizes = [m.table_rows for m in mods]
        self.register_buffer("vocab_offsets", _offsets(self.vocab_sizes), persistent=False)
        self.register_buffer("causal", torch.tensor([m.causal for m in mods], dtype=torch.bool), persistent=False)
        tables = [_fixed_positions(m, dim, config.image_frame) for m in mods]
        self.register_buffer("pos_offsets", _offsets([m.num_positions for m in mods]), persistent=False)
        self.position_scale = config.position_scale
        self.register_buffer("pos_table", torch.cat(tables) * config.position_scale, persistent=False)  # (sum L, D)

        # learned positions: one table per side over the learned modalities' rows (none: no parameters)
        learned_sizes = [m.num_positions if m.learned_positions else 0 for m in mods]
        self.register_buffer(
            "is_learned_pos", torch.tensor([m.learned_positions for m in mods], dtype=torch.bool), persistent=False
        )
        self.register_buffer("learned_offsets", _offsets(learned_sizes), persistent=False)
        if sum(learned_sizes):
            self.enc_positions = nn.Parameter(torch.empty(sum(learned_sizes), dim))  # (sum L_learned, D)
            self.dec_positions = nn.Parameter(torch.empty(sum(learned_sizes), dim))
        else:
            self.enc_positions = self.dec_positions = None

        self.enc_tokens = nn.Parameter(torch.empty(sum(self.vocab_sizes), dim))  # (sum V, D)
        self.enc_modality = nn.Parameter(torch.empty(len(mods), dim))
        # shared: the decoder reads enc_modality (a target-only modality's row is its decoder one)
        self.dec_modality = None if config.share_modality_embeddings else nn.Parameter(torch.empty(len(mods), dim))
        self.mask_token = nn.Parameter(torch.empty(dim))
        # sequences feed their previous token to the decoder: separate table unless shared
        seq_sizes = [m.vocab_size if m.causal and m.target else 0 for m in mods]
        self.has_sequence_targets = sum(seq_sizes) > 0
        self.shared = config.share_encoder_decoder_embeddings
        if self.has_sequence_targets and not self.shared:
            self.dec_tokens = nn.Parameter(torch.empty(sum(seq_sizes), dim))  # (sum V_seq, D)
            self.register_buffer("dec_vocab_offsets", _offsets(seq_sizes), persistent=False)
        else:
            self.dec_tokens = None
        self.seq_sizes = seq_sizes
        # patch modalities: one stem each (fourm.model.patch_stem: linear projection, conv or conv_image stem)
        self.patch_index = {name: i for i, (name, m) in enumerate(config.modalities.items()) if m.is_patches}
        self.patch_stem = config.patch_stem
        self.patch_embed = nn.ModuleDict(
            {
                name: build_patch_stem(
                    config.patch_stem, config.modalities[name].patch_dim, dim, config.patch_channels,
                    config.patch_stem_width, config.modalities[name].length,
                )  # fmt: skip
                for name in self.patch_index
            }
        )
        self.register_buffer("is_patch", torch.tensor([m.is_patches for m in mods], dtype=torch.bool), persistent=False)
        # continuous inputs (value_dim > 0, fourm.model.continuous): one linear projection (D, value_dim) each
        self.value_index = {
            name: i for i, (name, m) in enumerate(config.modalities.items()) if m.is_continuous and m.input
        }
        self.value_embed = nn.ModuleDict(
            {name: nn.Linear(config.modalities[name].value_dim, dim) for name in self.value_index}
        )
        self.register_buffer(
            "has_table", torch.tensor([m.table_rows > 0 for m in mods], dtype=torch.bool), persistent=False
        )
        self.reset_parameters(config.init_std, config.token_init_std)

    def reset_parameters(self, std: float = 0.02, token_std: float | None = None) -> None:
        """Normal init: the token tables at ``token_std`` (None: ``std``), other tables at ``std``."""
        for p in (self.enc_tokens, self.dec_tokens):
            if p is not None:
                nn.init.normal_(p, std=std if token_std is None else token_std)
        for p in (self.enc_modality, self.dec_modality, self.mask_token, self.enc_positions, self.dec_positions):
            if p is not None:
                nn.init.normal_(p, std=std)
        for stem in self.patch_embed.values():  # pixel patches enter at the position embedding's scale
            reset_patch_stem(stem, self.position_scale)
        for proj in self.value_embed.values():  # a unit-norm value enters at the position embedding's scale
            nn.init.normal_(proj.weight, std=self.position_scale * math.sqrt(POSITION_MEAN_SQUARE))
            nn.init.zeros_(proj.bias)

    def _index(self, ids: Tensor, modality: Tensor, valid: Tensor, offsets: Tensor) -> Tensor:
        """Global rows ``ids + offsets[modality]``; padding entries point at row 0."""
        return torch.where(valid, ids + offsets[modality], 0)

    def position(self, modality: Tensor, position: Tensor, valid: Tensor, learned: Tensor | None = None) -> Tensor:
        """Position embeddings (B, N, D): the fixed table, plus rows of the ``learned`` table
        (``enc_positions`` or ``dec_positions``) for modalities with learned positions."""
        pos = F.embedding(self._index(position, modality, valid, self.pos_offsets), self.pos_table)
        if learned is None:
            return pos
        here = valid & self.is_learned_pos[modality]  # (B, N)
        rows = F.embedding(self._index(position, modality, here, self.learned_offsets), learned)
        return pos + torch.where(here[..., None], rows, torch.zeros((), dtype=rows.dtype, device=rows.device))

    def encoder_input(
        self, tokens: Tensor, modality: Tensor, position: Tensor, valid: Tensor, patches: Tensor | None = None,
        values: Tensor | None = None,
    ) -> Tensor:
        """(B, N) ids / modality / position / valid (+ (B, N, P) patch values, (B, N, C) continuous
        values) -> (B, N, D)."""
        tok, emb = self.encoder_parts(tokens, modality, position, valid, patches, values)
        return tok + emb

    def encoder_parts(
        self, tokens: Tensor, modality: Tensor, position: Tensor, valid: Tensor, patches: Tensor | None = None,
        values: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The two terms of :meth:`encoder_input`: token (or patch / value projection) embeddings and
        position + modality embeddings, each (B, N, D)."""
        modality = torch.where(valid, modality, 0)
        from_table = valid & self.has_table[modality]
        tok = F.embedding(self._index(tokens, modality, from_table, self.vocab_offsets), self.enc_tokens)
        if self.patch_index and patches is not None:
            levels = patch_values(patches)  # (B, N, P) in [-1, 1]
            for name, index in self.patch_index.items():
                stem = self.patch_embed[name]
                here = valid & (modality == index)  # (B, N)
                if self.patch_stem == "linear":  # cheap: project every row, keep this modality's
                    tok = torch.where(here[..., None], stem(levels[..., : stem.in_features]).to(tok.dtype), tok)
                elif self.patch_stem == "conv_image":  # the given patches on their image, one CNN pass
                    tok = tok.index_put((here,), stem.embed_given(levels, position, here).to(tok.dtype))
                else:  # the stem runs on this modality's rows only
                    tok = tok.index_put((here,), stem(levels[here][:, : stem.in_features]).to(tok.dtype))
        if self.value_index and values is not None:
            for name, index in self.value_index.items():
                proj = self.value_embed[name]
                here = (valid & (modality == index))[..., None]
                tok = torch.where(here, proj(values[..., : proj.in_features].to(proj.weight.dtype)).to(tok.dtype), tok)
        return tok, self.position(modality, position, valid, self.enc_positions) + F.embedding(modality, self.enc_modality)

    def decoder_input(self, dec_input: Tensor, modality: Tensor, position: Tensor, valid: Tensor) -> Tensor:
        """(B, N) -> (B, N, D); image/vector tokens get the mask token, sequences their input id."""
        modality = torch.where(valid, modality, 0)
        mod_table = self.enc_modality if self.dec_modality is None else self.dec_modality
        x = self.position(modality, position, valid, self.dec_positions) + F.embedding(modality, mod_table)
        if not self.has_sequence_targets:
            return x + self.mask_token
        is_seq = valid & self.causal[modality]  # (B, N)
        if self.dec_tokens is None:
            tok = F.embedding(self._index(dec_input, modality, is_seq, self.vocab_offsets), self.enc_tokens)
        else:
            tok = F.embedding(self._index(dec_input, modality, is_seq, self.dec_vocab_offsets), self.dec_tokens)
        return x + torch.where(is_seq[..., None], tok, self.mask_token)

    def output_embeddings(self, indices: list[int]) -> list[Tensor]:
        """Input embeddings (V_m, D) of modalities ``indices``, used as their output heads when tied.

        Sequences with a decoder table use it, other modalities the encoder table. Each table is
        split once, so backward assembles one gradient per table (not one zero-padded copy per slice).
        """
        enc_chunks = self.enc_tokens.split(self.vocab_sizes)
        dec_chunks = self.dec_tokens.split(self.seq_sizes) if self.dec_tokens is not None else None
        return [
            dec_chunks[i] if dec_chunks is not None and self.seq_sizes[i] else enc_chunks[i] for i in indices
        ]
