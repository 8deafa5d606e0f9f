"""Conditions of a generation: given tokens per modality, full or partial, as packed encoder rows.

A condition is a tensor of token ids, or a :class:`GivenTokens` with explicit positions (a few
given rgb tokens at chosen grid positions) and a validity mask (a caption padded after [EOS])::

    conditions = {
        "depth": depth_tokens,                                   # (196,) or (B, 196): full image
        "rgb": GivenTokens.at(rgb_tokens[:20], positions=torch.arange(20)),   # partial image
        "caption": caption_ids,                                  # (n,) a sequence: positions 0..n-1
        "rgb_pixels": patches,                                   # (N, P) uint8: a patch modality
    }
    given = normalize_conditions(model.config, conditions, num_samples=4, device="cpu")
    enc = encoder_inputs(model.config, given)                    # EncoderInputs, (4, Ne)

A 1-D condition (or a batch of one) is shared by all samples. A condition on a modality that is
also a generation target is partial: its tokens are kept and the rest is generated (for sequences
the given tokens are a prefix that generation continues). A patch modality (``patch_dim`` > 0) is
given as its pixel patches (N, P) / (B, N, P) uint8 (or flat (N * P,) as a token dataset stores
them), or as ``GivenTokens`` with ``values``; its token ids are 0. A continuous modality
(``value_dim`` > 0, :mod:`fourm.model.continuous`) is given as its float values, (L * C,) / (B, L * C)
or (L, C) / (B, L, C), or as :meth:`GivenTokens.continuous`; its token ids are 0 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from fourm.core.batch import pad_columns
from fourm.errors import FourmError
from fourm.model.config import FourMConfig


@dataclass
class GivenTokens:
    """Given tokens of one modality: ids, positions within the modality and validity, (B, n) each."""

    tokens: Tensor  # (B, n) long
    positions: Tensor  # (B, n) long
    valid: Tensor  # (B, n) bool
    values: Tensor | None = None  # (B, n, P) uint8 pixel patches of a patch modality, or (B, n, C) float continuous values

    @classmethod
    def patches(cls, values: Tensor, positions: Tensor | None = None) -> GivenTokens:
        """Pixel patches (n, P) or (B, n, P) of a patch modality at ``positions`` (default 0..n-1)."""
        values = torch.as_tensor(values)
        if values.dim() == 2:
            values = values[None]
        if values.dim() != 3 or values.dtype.is_floating_point or values.dtype == torch.bool:
            raise FourmError(f"given patches must be integer levels of shape (n, P) or (B, n, P), got {tuple(values.shape)} {values.dtype}")
        given = cls.at(torch.zeros(values.shape[:2], dtype=torch.long, device=values.device), positions)
        return cls(given.tokens, given.positions, given.valid, values.expand(given.batch_size, *values.shape[1:]))

    @classmethod
    def continuous(cls, values: Tensor, positions: Tensor | None = None) -> GivenTokens:
        """Float values (n, C) or (B, n, C) of a continuous modality at ``positions`` (default 0..n-1)."""
        values = torch.as_tensor(values)
        if values.dim() == 2:
            values = values[None]
        if values.dim() != 3 or not values.dtype.is_floating_point:
            raise FourmError(f"given continuous values must be floats of shape (n, C) or (B, n, C), got {tuple(values.shape)} {values.dtype}")
        given = cls.at(torch.zeros(values.shape[:2], dtype=torch.long, device=values.device), positions)
        return cls(given.tokens, given.positions, given.valid, values.float().expand(given.batch_size, *values.shape[1:]))

    @classmethod
    def at(cls, tokens: Tensor, positions: Tensor | None = None, valid: Tensor | None = None) -> GivenTokens:
        """Tokens (n,) or (B, n) at ``positions`` (default 0..n-1), all valid unless ``valid`` says."""
        tokens = torch.as_tensor(tokens)
        if tokens.dim() == 1:
            tokens = tokens[None]
        if tokens.dim() != 2:
            raise FourmError(f"given tokens must be (n,) or (B, n), got shape {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise FourmError(f"given tokens must be integer ids, got dtype {tokens.dtype}")
        if positions is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        positions = torch.as_tensor(positions, device=tokens.device)
        positions = positions[None] if positions.dim() == 1 else positions
        valid = torch.ones_like(tokens, dtype=torch.bool) if valid is None else torch.as_tensor(valid, device=tokens.device)
        valid = valid[None] if valid.dim() == 1 else valid
        if valid.dtype != torch.bool:
            raise FourmError(f"valid must be a bool tensor, got {valid.dtype}")
        b = max(tokens.shape[0], positions.shape[0], valid.shape[0])
        try:
            tokens, positions, valid = (t.expand(b, tokens.shape[1]) for t in (tokens, positions, valid))
        except RuntimeError:
            raise FourmError(
                f"given tokens {tuple(tokens.shape)}, positions {tuple(positions.shape)} and valid "
                f"{tuple(valid.shape)} do not match (expected the same (B, n) or (n,))"
            ) from None
        return cls(tokens.long(), positions.long(), valid)

    @classmethod
    def sequence(cls, tokens: Tensor, eos: int | None = None, pad: int | None = None) -> GivenTokens:
        """A sequence (n,) / (B, n) at positions 0..n-1, valid up to its first ``eos`` (inclusive)
        and, if ``pad`` is given, where the token is not ``pad``."""
        given = cls.at(tokens)
        valid = torch.ones_like(given.valid)
        if eos is not None:
            is_eos = given.tokens == eos
            after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
            valid &= ~after_eos
        if pad is not None:
            valid &= given.tokens != pad
        return cls(given.tokens, given.positions, valid)

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: torch.device | str) -> GivenTokens:
        return GivenTokens(*(_maybe(getattr(self, f.name), lambda t: t.to(device)) for f in fields(self)))

    def expand(self, batch_size: int, name: str = "condition") -> GivenTokens:
        """Broadcast a batch of one to ``batch_size`` rows (FourmError for another mismatch)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise FourmError(
                f"condition '{name}' has batch size {self.batch_size}, expected 1 or num_samples = {batch_size}"
            )
        return GivenTokens(
            *(_maybe(getattr(self, f.name), lambda t: t.expand(batch_size, *t.shape[1:])) for f in fields(self))
        )

    def on_grid(self, length: int) -> tuple[Tensor, Tensor]:
        """Scatter onto a full token row: (tokens (B, length), known (B, length) bool)."""
        b = self.batch_size
        tokens = torch.zeros(b, length, dtype=torch.long, device=self.tokens.device)
        known = torch.zeros(b, length, dtype=torch.bool, device=self.tokens.device)
        pos = torch.where(self.valid, self.positions, length)  # invalid -> a dropped extra column
        tokens = torch.cat([tokens, tokens[:, :1]], dim=1).scatter_(1, pos, self.tokens)[:, :length]
        known = torch.cat([known, known[:, :1]], dim=1).scatter_(1, pos, True)[:, :length]
        return tokens, known


def _maybe(t: Tensor | None, fn):
    """``fn(t)``, or None for None."""
    return None if t is None else fn(t)


@dataclass
class EncoderInputs:
    """Packed encoder rows (B, N) in the :class:`fourm.core.batch.MultimodalBatch` convention;
    ``patches`` (B, N, P) holds the pixel patches of patch-modality slots, ``values`` (B, N, C) the
    float values of continuous-modality slots (None where the model has no such modality)."""

    tokens: Tensor  # (B, N) long
    modality: Tensor  # (B, N) long
    position: Tensor  # (B, N) long
    valid: Tensor  # (B, N) bool
    patches: Tensor | None = None  # (B, N, P) uint8
    values: Tensor | None = None  # (B, N, C) float

    @classmethod
    def empty(cls, batch_size: int, device: torch.device | str = "cpu") -> EncoderInputs:
        """Rows without any token (width 0)."""
        z = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        return cls(z, z.clone(), z.clone(), z.bool())

    @classmethod
    def of_modality(cls, index: int, given: GivenTokens, patch_width: int = 0, value_width: int = 0) -> EncoderInputs:
        """The given tokens of modality number ``index``; with ``patch_width`` > 0 a (B, n, P) patch
        row, with ``value_width`` > 0 a (B, n, C) float value row: ``given.values`` zero-padded to the
        width in the row of its kind (zeros elsewhere)."""
        b, n = given.tokens.shape
        patches = values = None
        given_values = given.values
        float_values = given_values is not None and given_values.dtype.is_floating_point
        if patch_width:
            patches = torch.zeros(b, n, patch_width, dtype=torch.uint8, device=given.tokens.device)
            if given_values is not None and not float_values:
                patches[..., : given_values.shape[2]] = given_values
        if value_width:
            values = torch.zeros(b, n, value_width, device=given.tokens.device)
            if float_values:
                values[..., : given_values.shape[2]] = given_values
        return cls(given.tokens, torch.full_like(given.tokens, index), given.positions, given.valid, patches, values)

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def width(self) -> int:
        return self.tokens.shape[1]

    def _map(self, fn) -> EncoderInputs:
        """``fn`` applied to every row tensor (the patch rows included), as (B, N, ...) tensors."""
        return EncoderInputs(*(_maybe(getattr(self, f.name), fn) for f in fields(self)))

    def cat(self, other: EncoderInputs) -> EncoderInputs:
        """Columns of ``self`` then ``other`` (same batch size)."""
        if (self.patches is None) != (other.patches is None) or (self.values is None) != (other.values is None):
            raise FourmError("cannot join encoder rows with and without patch / value rows (same model config expected)")
        return EncoderInputs(
            *(_maybe(getattr(self, f.name), lambda a, f=f: torch.cat([a, getattr(other, f.name)], dim=1)) for f in fields(self))
        )

    def pad_to(self, width: int) -> EncoderInputs:
        """Right-pad with invalid columns up to ``width``."""
        extra = width - self.width
        if extra <= 0:
            return self
        return self._map(lambda t: pad_columns(t, extra))

    def repeat(self, times: int) -> EncoderInputs:
        """The whole batch ``times`` times: rows [x_0..x_B-1, x_0..x_B-1, ...] (times * B, N)."""
        return self._map(lambda t: t.repeat(times, *([1] * (t.dim() - 1))))

    def compact(self) -> EncoderInputs:
        """Valid tokens moved to the front (stable) and columns that are padding in every row
        dropped; keeps at least one column."""
        if self.width == 0 or bool(self.valid.all()):
            return self if self.width > 0 else self.pad_to(1)
        order = torch.argsort((~self.valid).to(torch.uint8), dim=1, stable=True)
        width = max(1, int(self.valid.sum(dim=1).max()))
        order = order[:, :width]

        def gather(t: Tensor) -> Tensor:
            index = order.reshape(*order.shape, *([1] * (t.dim() - 2))).expand(*order.shape, *t.shape[2:])
            return t.gather(1, index)

        return self._map(gather)

    def encode_with(self, model) -> Tensor:
        """``model.encode`` of these rows: (B, N, D)."""
        if self.values is None:  # a model without continuous modalities
            return model.encode(self.tokens, self.modality, self.position, self.valid, self.patches)
        return model.encode(self.tokens, self.modality, self.position, self.valid, self.patches, values=self.values)

    @staticmethod
    def stack(rows: list[EncoderInputs]) -> EncoderInputs:
        """Concatenate along the batch, right-padding to the widest."""
        width = max(r.width for r in rows)
        padded = [r.pad_to(width) for r in rows]
        if len({(p.patches is None, p.values is None) for p in padded}) > 1:
            raise FourmError("cannot stack encoder rows with and without patch / value rows (same model config expected)")
        return EncoderInputs(
            *(
                None if getattr(padded[0], f.name) is None else torch.cat([getattr(p, f.name) for p in padded], dim=0)
                for f in fields(EncoderInputs)
            )
        )


def _check_given(config: FourMConfig, name: str, given: GivenTokens) -> None:
    """Positions/ids in range, no repeated positions, modality usable as an input."""
    mod = config.modalities[name]
    if not mod.input:
        raise FourmError(f"modality '{name}' cannot be a condition: it is not a model input (input: false)")
    if given.tokens.shape[1] > mod.length:
        raise FourmError(
            f"condition '{name}' has {given.tokens.shape[1]} tokens, more than the modality's length {mod.length}"
        )
    v = given.valid
    if mod.is_patches:
        p = given.values
        if p is None or p.shape[:2] != given.tokens.shape or p.shape[2] != mod.patch_dim:
            got = "no patches" if p is None else f"shape {tuple(p.shape)}"
            raise FourmError(f"condition '{name}' is a patch modality: expected patches (B, n, {mod.patch_dim}), got {got}")
        if p.numel() and (int(p.min()) < 0 or int(p.max()) > 255):
            raise FourmError(f"condition '{name}': patch values must be 8-bit levels 0..255, got {int(p.min())}..{int(p.max())}")
    elif mod.is_continuous:
        p = given.values
        if p is None or not p.dtype.is_floating_point or p.shape[:2] != given.tokens.shape or p.shape[2] != mod.value_dim:
            got = "no values" if p is None else f"shape {tuple(p.shape)} {p.dtype}"
            raise FourmError(f"condition '{name}' is continuous: expected float values (B, n, {mod.value_dim}), got {got}")
        if not bool(torch.isfinite(p).all()):
            raise FourmError(f"condition '{name}': its values must be finite (got nan or inf)")
    elif given.values is not None:
        raise FourmError(f"condition '{name}' is not a patch modality: give token ids, not patches")
    bad_pos = v & ((given.positions < 0) | (given.positions >= mod.length))
    if bad_pos.any():
        value = int(given.positions[bad_pos][0])
        raise FourmError(f"condition '{name}': position {value} is out of range (expected 0..{mod.length - 1})")
    bad_tok = v & ((given.tokens < 0) | (given.tokens >= mod.vocab_size))
    if bad_tok.any():
        value = int(given.tokens[bad_tok][0])
        raise FourmError(
            f"condition '{name}': token id {value} is out of range (expected 0..{mod.vocab_size - 1}, vocab_size {mod.vocab_size})"
        )
    pos = torch.where(v, given.positions, -1 - torch.arange(v.shape[1], device=v.device))
    sorted_pos = pos.sort(dim=1).values
    if given.tokens.shape[1] > 1 and (sorted_pos[:, 1:] == sorted_pos[:, :-1]).any():
        raise FourmError(f"condition '{name}' gives the same position twice (expected distinct positions)")


def as_patches(what: str, value: Tensor, length: int, patch_dim: int) -> Tensor:
    """Pixel patches (N, P), (B, N, P), flat (N * P,) or (B, N * P) -> (B or 1, N, P); ``what`` names
    the value in the error (e.g. "condition 'rgb_pixels'")."""
    if value.dim() in (1, 2) and value.shape[-1] == length * patch_dim:
        value = value.reshape(-1, length, patch_dim)
    if value.dim() == 2:
        value = value[None]
    if value.dim() != 3 or value.shape[1:] != (length, patch_dim):
        raise FourmError(
            f"{what} must be {length} patches of {patch_dim} values, (N, P) or (B, N, P), got shape {tuple(value.shape)}"
        )
    return value


def as_values(what: str, value: object, length: int, dim: int) -> Tensor:
    """Continuous values (L * C,), (B, L * C), (L, C) or (B, L, C) -> (B or 1, L, C) fp32; ``what``
    names the value in the error (e.g. "condition 'caption_vector'")."""
    try:
        t = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise FourmError(f"{what} must be {length} x {dim} float values, got {type(value).__name__}") from None
    if t.dim() in (1, 2) and t.shape[-1] == length * dim:
        t = t.reshape(-1, length, dim)
    elif t.dim() == 2 and t.shape == (length, dim):
        t = t[None]
    if t.dim() != 3 or t.shape[1:] != (length, dim):
        raise FourmError(f"{what} must be {length} x {dim} float values, got shape {tuple(t.shape)}")
    return t


def normalize_conditions(
    config: FourMConfig,
    conditions: Mapping[str, Tensor | GivenTokens] | None,
    num_samples: int,
    device: torch.device | str = "cpu",
) -> dict[str, GivenTokens]:
    """Checked :class:`GivenTokens` of ``num_samples`` rows on ``device``, in the model's modality order.

    Tensors are full conditions at positions 0..n-1 (an image tensor must hold all its tokens).
    """
    if num_samples < 1:
        raise FourmError(f"num_samples must be >= 1, got {num_samples}")
    out: dict[str, GivenTokens] = {}
    conditions = dict(conditions or {})
    for name in conditions:
        config.modality_index(name)  # unknown name -> FourmError listing the known ones
    for name in config.modality_names:
        if name not in conditions:
            continue
        value = conditions[name]
        mod = config.modalities[name]
        if isinstance(value, GivenTokens):
            given = value
        elif mod.is_patches and isinstance(value, (Tensor, list, tuple)):
            given = GivenTokens.patches(as_patches(f"condition '{name}'", torch.as_tensor(value), mod.length, mod.patch_dim))
        elif mod.is_continuous and isinstance(value, (Tensor, list, tuple)):
            given = GivenTokens.continuous(as_values(f"condition '{name}'", value, mod.length, mod.value_dim))
        elif isinstance(value, (Tensor, list, tuple)):
            given = GivenTokens.at(torch.as_tensor(value))
            if mod.kind == "image" and given.tokens.shape[1] != mod.length:
                raise FourmError(
                    f"condition '{name}' has {given.tokens.shape[1]} tokens but the image has {mod.length}; "
                    "give GivenTokens.at(tokens, positions) for a partial image"
                )
        else:
            raise FourmError(f"condition '{name}' must be a tensor of token ids or GivenTokens, got {type(value).__name__}")
        given = given.to(device).expand(num_samples, name)
        _check_given(config, name, given)
        out[name] = given
    return out


def encoder_inputs(
    config: FourMConfig,
    given: Mapping[str, GivenTokens],
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> EncoderInputs:
    """Pack given tokens of several modalities into encoder rows (B, N); with nothing given,
    ``batch_size`` empty rows on ``device``."""
    width, value_width = config.patch_width, config.value_width
    parts = [EncoderInputs.of_modality(config.modality_index(name), g, width, value_width) for name, g in given.items()]
    if not parts:
        if batch_size is None:
            raise FourmError("encoder_inputs needs batch_size when no modality is given")
        empty = EncoderInputs.empty(batch_size, device)
        if width:
            empty.patches = torch.zeros(batch_size, 0, width, dtype=torch.uint8, device=device)
        if value_width:
            empty.values = torch.zeros(batch_size, 0, value_width, device=device)
        return empty
    out = parts[0]
    for p in parts[1:]:
        out = out.cat(p)
    return out
