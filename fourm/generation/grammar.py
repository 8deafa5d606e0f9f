"""Grammar-constrained decoding of structured sequences: logits processors that mask, at every
autoregressive step, the tokens that would make the sequence malformed.

A processor keeps a small state machine per sample (row) on the model's device. The sampler
(:class:`fourm.generation.autoregressive.AutoregressiveSampler`) calls ``start`` with the given
prefix (possibly empty), then per generated position ``allowed`` (a (B, V) bool mask) and
``advance`` with the chosen tokens. Every state allows at least [EOS] or one content token, and a
structure is only started where it can be finished within the maximum length, so the output always
parses (unless the given prefix itself is malformed: a prefix token the grammar does not allow
sends the row back to a state where a new group can start, and the parser reports the bad group).

* :class:`BoxGrammar` (``bboxes``): ``label [x=i] [y=j] [x=k] [y=l]`` repeated, then [EOS]. A label
  is 1..``max_label_tokens`` word pieces (the first not a ``##`` continuation; only letters, digits
  and ``- / & +``: pieces such as ``.`` or ``(`` are joined to the neighbouring token when the text
  is decoded and would break the box), then exactly four coordinate tokens with ``i <= k`` and
  ``j <= l``. [EOS] only at the very start (no boxes) or right after a complete box.
* :class:`PaletteGrammar` (``color_palette``): ``[palette=k]`` then exactly 3k ``[c=i]`` colour
  tokens, then [EOS]; k is at most the tokenizer's maximum palette size and what fits the length.
* :class:`DynamicGrammar` (the rows of a dynamic image tokenizer, e.g. ``rgb_dynamic``): ``[pos p]
  [code c]`` pairs with increasing positions, at least one, then [EOS].

    grammar = grammar_for("bboxes", text_tokenizer, vocab_size=model_vocab)   # None: no grammar
    sampler = AutoregressiveSampler(..., processor=grammar)
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from fourm.errors import FourmError
from tokenizers_zoo.image.dynamic_layout import EOS_ID
from tokenizers_zoo.text.vocabulary import parse_token

# characters a label word piece may hold besides letters and digits: decoding never attaches them
# to a neighbouring token (unlike . , ! ? ' : ; % ( ), see tokenizers_zoo.text.tokenizer)
_LABEL_PUNCTUATION = set("-/&+")
GRAMMAR_MODALITIES = ("bboxes", "color_palette")


class LogitsProcessor(Protocol):
    """What the autoregressive sampler needs from a grammar."""

    def start(self, prefix: Tensor, length: int) -> None:
        """New batch: rows of the given prefix (B, p) (p may be 0), ``length`` = maximum length."""

    def allowed(self, position: int) -> Tensor:
        """(B, V) bool: the tokens each row may take at ``position``."""

    def advance(self, tokens: Tensor) -> None:
        """Feed the (B,) tokens chosen at the current position."""


def _label_piece(token: str) -> tuple[bool, bool]:
    """(may start a label, may continue a label) for one WordPiece token string."""
    body, continuation = (token[2:], True) if token.startswith("##") and len(token) > 2 else (token, False)
    ok = bool(body) and all(c.isalnum() or c in _LABEL_PUNCTUATION for c in body)
    return ok and not continuation, ok


class _TokenTables:
    """Per-id tables of a text tokenizer's vocabulary, padded to the model's ``vocab_size``."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        if tokenizer.vocab_size > vocab_size:
            raise FourmError(f"the text tokenizer has {tokenizer.vocab_size} tokens, more than the model's {vocab_size}")
        self.vocab_size = vocab_size
        self.eos = tokenizer.eos_id
        num_structured = len(tokenizer.structured)
        self.label_start = torch.zeros(vocab_size, dtype=torch.bool)
        self.label_cont = torch.zeros(vocab_size, dtype=torch.bool)
        self.kind: dict[str, Tensor] = {}  # structured family -> (V,) long bin index, -1 elsewhere
        for family in ("x", "y", "c", "palette"):
            self.kind[family] = torch.full((vocab_size,), -1, dtype=torch.long)
        for i in range(tokenizer.vocab_size):
            token = tokenizer.id_to_token(i)
            if i < num_structured:
                parsed = parse_token(token)
                if parsed is not None and parsed[0] in self.kind:
                    self.kind[parsed[0]][i] = int(parsed[1])
            else:
                self.label_start[i], self.label_cont[i] = _label_piece(token)
        if not bool(self.label_start.any()):
            raise FourmError("the text vocabulary has no word piece a box label can start with")
        # content tokens: anything a decoded sequence keeps (not [PAD], [SOS], [MASK], sentinels)
        no_content = {tokenizer.pad_id, tokenizer.sos_id, tokenizer.mask_id, *tokenizer.sentinel_ids}
        self.no_content = torch.zeros(vocab_size, dtype=torch.bool)
        self.no_content[sorted(no_content)] = True

    def to(self, device: torch.device) -> None:
        self.label_start, self.label_cont, self.no_content = (
            t.to(device) for t in (self.label_start, self.label_cont, self.no_content)
        )
        self.kind = {k: v.to(device) for k, v in self.kind.items()}


class BoxGrammar:
    """Well-formed serialised boxes (see the module docstring); ``max_label_tokens`` caps a label."""

    # phases: 0 between boxes (or at the start), 1 in a label, 2 after x0, 3 after y0, 4 after x1
    BOX_TAIL = 4  # coordinate tokens after a label

    def __init__(self, tokenizer: Any, vocab_size: int, max_label_tokens: int = 8) -> None:
        if max_label_tokens < 1:
            raise FourmError(f"max_label_tokens must be >= 1, got {max_label_tokens}")
        self.tables = _TokenTables(tokenizer, vocab_size)
        self.max_label_tokens = int(max_label_tokens)
        self.eos = self.tables.eos
        self.length = 0

    def start(self, prefix: Tensor, length: int) -> None:
        b, device = prefix.shape[0], prefix.device
        self.tables.to(device)
        self.length = int(length)
        self.position = 0
        zeros = torch.zeros(b, dtype=torch.long, device=device)
        self.phase, self.label_len, self.x0, self.y0 = zeros, zeros.clone(), zeros.clone(), zeros.clone()
        for j in range(prefix.shape[1]):
            self.advance(prefix[:, j])

    def allowed(self, position: int) -> Tensor:
        t = self.tables
        room = self.length - position >= 1 + self.BOX_TAIL  # a label token here can still be followed by 4 coordinates
        is_x, is_y = t.kind["x"] >= 0, t.kind["y"] >= 0  # (V,)
        eos = torch.zeros_like(t.label_start)
        eos[self.eos] = True
        phase = self.phase[:, None]
        between = (t.label_start & room) | eos  # (V,)
        label = (t.label_cont & room)[None, :] & (self.label_len < self.max_label_tokens)[:, None]
        label = label | is_x[None, :]  # (B, V)
        x1 = is_x[None, :] & (t.kind["x"][None, :] >= self.x0[:, None])
        y1 = is_y[None, :] & (t.kind["y"][None, :] >= self.y0[:, None])
        mask = torch.where(phase == 0, between[None, :], label)
        mask = torch.where(phase == 2, is_y[None, :], mask)
        mask = torch.where(phase == 3, x1, mask)
        return torch.where(phase == 4, y1, mask)

    def advance(self, tokens: Tensor) -> None:
        t, p = self.tables, self.phase
        xb, yb = t.kind["x"][tokens], t.kind["y"][tokens]
        start, cont = t.label_start[tokens], t.label_cont[tokens]
        skip = t.no_content[tokens] | (tokens == self.eos)
        in_label = p == 1
        new_label = (p == 0) & start
        more_label = in_label & cont & (self.label_len < self.max_label_tokens)
        to2 = in_label & (xb >= 0)
        to3 = (p == 2) & (yb >= 0)
        to4 = (p == 3) & (xb >= self.x0)
        to0 = (p == 4) & (yb >= self.y0)
        ok = new_label | more_label | to2 | to3 | to4 | to0 | skip
        phase = torch.where(new_label | more_label, 1, p)
        phase = torch.where(to2, 2, phase)
        phase = torch.where(to3, 3, phase)
        phase = torch.where(to4, 4, phase)
        phase = torch.where(to0, 0, phase)
        label_len = torch.where(new_label, 1, torch.where(more_label, self.label_len + 1, self.label_len))
        # a token the grammar does not allow (only from a given prefix): a label piece starts a new
        # label, anything else ends the broken group (the parser reports it)
        restart = ~ok & start
        phase = torch.where(restart, 1, torch.where(~ok, 0, phase))
        label_len = torch.where(restart, 1, torch.where(~ok | (phase == 0), 0, label_len))
        self.x0 = torch.where(to2, xb, self.x0)
        self.y0 = torch.where(to3, yb, self.y0)
        self.phase, self.label_len = phase, label_len
        self.position += 1


class PaletteGrammar:
    """``[palette=k]`` and exactly 3k colour tokens, then [EOS]."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.tables = _TokenTables(tokenizer, vocab_size)
        self.eos = self.tables.eos
        self.length = 0

    def start(self, prefix: Tensor, length: int) -> None:
        b, device = prefix.shape[0], prefix.device
        self.tables.to(device)
        self.length = int(length)
        # left: colour tokens still due (-1: the size token is due)
        self.left = torch.full((b,), -1, dtype=torch.long, device=device)
        for j in range(prefix.shape[1]):
            self.advance(prefix[:, j])

    def allowed(self, position: int) -> Tensor:
        t = self.tables
        room = self.length - position - 1  # slots after this one
        size = (t.kind["palette"] >= 0) & (3 * t.kind["palette"] <= room)
        color = t.kind["c"] >= 0
        eos = torch.zeros_like(color)
        eos[self.eos] = True
        left = self.left[:, None]
        return torch.where(left < 0, size[None, :], torch.where(left > 0, color[None, :], eos[None, :]))

    def advance(self, tokens: Tensor) -> None:
        t = self.tables
        k, c = t.kind["palette"][tokens], t.kind["c"][tokens]
        skip = t.no_content[tokens] | (tokens == self.eos)
        left = torch.where((self.left < 0) & (k >= 0), 3 * k, self.left)
        left = torch.where((self.left > 0) & (c >= 0), self.left - 1, left)
        # anything else (only from a malformed given prefix) leaves the state as it was
        self.left = torch.where(skip, self.left, left)


class DynamicGrammar:
    """``[pos p][code c]`` pairs with strictly increasing positions, then [EOS] (the rows of a dynamic
    image tokenizer, :mod:`tokenizers_zoo.image.dynamic_layout`): at least one pair; a pair only where
    it and the [EOS] after it fit the maximum length. ``layout``: a ``DynamicTokenLayout``."""

    def __init__(self, layout: Any, vocab_size: int) -> None:
        if layout.vocab_size > vocab_size:
            raise FourmError(f"the dynamic tokenizer has {layout.vocab_size} ids, more than the model's {vocab_size}")
        self.eos, self.reserved, self.num_positions = EOS_ID, layout.num_reserved, layout.num_positions
        ids = torch.arange(vocab_size)
        self.pos = torch.where((ids >= self.reserved) & (ids < self.reserved + self.num_positions), ids - self.reserved, -1)
        self.is_code = (ids >= self.reserved + self.num_positions) & (ids < layout.vocab_size)  # (V,)
        self.length = 0

    def start(self, prefix: Tensor, length: int) -> None:
        b, device = prefix.shape[0], prefix.device
        self.pos, self.is_code = self.pos.to(device), self.is_code.to(device)
        self.length = int(length)
        self.in_pair = torch.zeros(b, dtype=torch.bool, device=device)  # a [pos] waits for its [code]
        self.last = torch.full((b,), -1, dtype=torch.long, device=device)  # last position, -1: none yet
        for j in range(prefix.shape[1]):
            self.advance(prefix[:, j])

    def allowed(self, position: int) -> Tensor:
        room = self.length - position >= 3  # [pos] here, its [code], then [EOS]
        pos = (self.pos[None, :] > self.last[:, None]) & room  # (B, V)
        eos = torch.zeros_like(self.is_code)
        eos[self.eos] = True
        between = pos | (eos[None, :] & ((self.last >= 0) | ~pos.any(dim=1))[:, None])
        return torch.where(self.in_pair[:, None], self.is_code[None, :], between)

    def advance(self, tokens: Tensor) -> None:
        p = self.pos[tokens]
        new_pair = ~self.in_pair & (p > self.last)
        code = self.in_pair & self.is_code[tokens]
        # anything else (only from a malformed given prefix) leaves the state as it was
        self.last = torch.where(new_pair, p, self.last)
        self.in_pair = torch.where(new_pair, True, torch.where(code, False, self.in_pair))


def grammar_for(kind: str, tokenizer: Any, vocab_size: int, **options: Any) -> LogitsProcessor | None:
    """The grammar of a text modality kind (``bboxes``, ``color_palette``), None for the others."""
    if kind == "bboxes":
        return BoxGrammar(tokenizer, vocab_size, **options)
    if kind == "color_palette":
        return PaletteGrammar(tokenizer, vocab_size)
    return None
