"""Pre-tokenization: a raw dataset (world or user data) -> a token dataset on disk.

Each modality of the registry is encoded by its codec (:mod:`fourm.codecs`, the same value -> ids
code that encodes generation's conditions) with its own tokenizer (image tokenizers for image-like
modalities, the shared text tokenizer for captions / boxes / palettes / metadata, a vector tokenizer
for embedding vectors); a patch modality (``patch_size`` set) needs no tokenizer, its image is cut
into flat 8-bit pixel patches (:mod:`fourm.core.patches`), nor does a box map. The two grids of a
two-level tokenizer (``token_level: top`` / ``bottom``, e.g. ``rgb_top`` and ``rgb_bottom``) are two
modalities over one tokenizer, each holding its grid's ids, from one encoder run per batch
(:mod:`fourm.codecs.levels`). Pre-tokenization adds
the batching, the missing values (None, counted), the truncation count, the device and precision;
unlike generation it refuses an image of another size than the tokenizer's (import sized the raw
data: another size is a mismatch, not a picture to resize) and drops metadata keys the text
vocabulary does not know instead of refusing them. Work is done in shards of ``shard_size``
samples, each saved atomically under ``<out>.partial/`` as soon as it is done, so an interrupted run
resumes where it stopped; the final :func:`fourm.data.token_dataset.write_token_dataset` call
assembles the shards into ``<out>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from fourm.codecs import SequenceCodec
from fourm.codecs.dynamic import DynamicImageCodec
from fourm.codecs.factory import CodecFactory
from fourm.core.patches import LEVELS
from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.raw_dataset import RawSamples, load_raw_dataset
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.utils.atomic import atomic_path
from fourm.utils.outputs import claim_partial
from fourm.utils.precision import resolve_precision

# values (one per sample, None = missing) -> token id lists (None = missing)
EncodeFn = Callable[[list[Any]], list[list[int] | None]]


@dataclass
class PretokenizeReport:
    """What a run did: samples per split, sequences truncated per modality, shards reused."""

    samples: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    shards_done: int = 0
    shards_resumed: int = 0

    def summary(self) -> str:
        parts = [f"{split}: {n} samples" for split, n in self.samples.items()]
        parts.append(f"shards: {self.shards_done} encoded, {self.shards_resumed} resumed")
        if any(self.missing.values()):
            parts.append("missing values: " + ", ".join(f"{k}={v}" for k, v in self.missing.items() if v))
        if any(self.truncated.values()):
            parts.append("truncated: " + ", ".join(f"{k}={v}" for k, v in self.truncated.items() if v))
        return "; ".join(parts)


def resolve_tokenizer_path(spec: ModalitySpec, root: str | Path, overrides: dict[str, str] | None = None) -> Path:
    """Where the tokenizer of ``spec`` lives: an override, an absolute path, or ``root / spec.tokenizer``."""
    ref = (overrides or {}).get(spec.name) or spec.tokenizer
    if not ref:
        raise FourmError(f"modality '{spec.name}' has no tokenizer (set 'tokenizer' in its YAML or pass one)")
    path = Path(ref)
    return path if path.is_absolute() else Path(root) / path


def fit_to_overrides(
    registry: ModalityRegistry, modalities: Sequence[str], overrides: dict[str, str] | None, device: str = "cpu"
) -> tuple[ModalityRegistry, list[str]]:
    """(the registry with each image modality whose tokenizer is overridden declaring the tokens per
    sample and vocabulary that tokenizer gives, one line per change). A retrained tokenizer on another
    grid or codebook (e.g. 256 tokens of 512 codes over a 64-token entry) then needs no edited registry;
    without an override a mismatch stays an error (:func:`_check_tokens`). Two-level entries
    (``token_level``) share one tokenizer and are not fitted."""
    fitted, notes = [], []
    factory = CodecFactory(device=device, precision="fp32", resize=False, strict_text=False)
    for spec in registry.values():
        if spec.name in (overrides or {}) and spec.name in modalities and spec.kind == "image" and spec.needs_tokenizer \
                and spec.token_level is None:  # fmt: skip
            path = resolve_tokenizer_path(spec, ".", overrides)
            tok = factory.codec(spec, path, spec.length).tokenizer
            if (tok.num_tokens, tok.vocab_size) != (spec.num_tokens, spec.vocab_size):
                notes.append(
                    f"modality '{spec.name}': {tok.num_tokens} tokens of vocabulary {tok.vocab_size} from --tokenizer "
                    f"{spec.name}={path} (the registry declares {spec.num_tokens} of {spec.vocab_size})"
                )
                spec = spec.replace(num_tokens=tok.num_tokens, vocab_size=tok.vocab_size)
        fitted.append(spec)
    return ModalityRegistry(fitted), notes


def _check_tokens(path: Path, tok: Any, spec: ModalitySpec, num_tokens: int | None = None) -> None:
    """FourmError unless the tokenizer at ``path`` gives the tokens the registry declares for ``spec``
    (``num_tokens``: the tokens of the spec's level of a two-level tokenizer, default all of them)."""
    n = tok.num_tokens if num_tokens is None else num_tokens
    if tok.vocab_size != spec.vocab_size or n != spec.num_tokens:
        level = f" ({spec.token_level} level)" if spec.token_level else ""
        raise FourmError(
            f"tokenizer {path}{level} gives {n} tokens of vocabulary {tok.vocab_size}, but modality "
            f"'{spec.name}' declares {spec.num_tokens} tokens of vocabulary {spec.vocab_size}"
        )


def codec_encoder(codec: Any) -> EncodeFn:
    """The encode function of one modality from its codec (:mod:`fourm.codecs`, the same code that
    encodes generation's conditions): the present values (None = missing) of a batch normalised and
    encoded in one ``codec.encode`` call, each row flattened (patches: N * patch_dim 8-bit values)."""

    def encode(values: list[Any]) -> list[list[int] | None]:
        present = [i for i, v in enumerate(values) if v is not None]
        out: list[list[int] | None] = [None] * len(values)
        if present:
            ids = codec.encode([values[i] for i in present])
            for row, i in zip(ids.reshape(len(present), -1).tolist(), present):
                out[i] = row
        return out

    return encode


def sequence_encoder(codec: SequenceCodec | DynamicImageCodec, report: PretokenizeReport) -> EncodeFn:
    """The encode function of a sequence modality: each present value's ids up to its [EOS] (no
    [PAD]s; too long: truncated, keeping the [EOS], and counted in ``report.truncated``)."""

    def encode(values: list[Any]) -> list[list[int] | None]:
        present = [i for i, v in enumerate(values) if v is not None]
        out: list[list[int] | None] = [None] * len(values)
        if present:
            rows, full = codec.encode_unpadded([values[i] for i in present])
            cut = sum(n > codec.length for n in full)
            report.truncated[codec.name] = report.truncated.get(codec.name, 0) + cut
            for row, i in zip(rows, present):
                out[i] = row
        return out

    return encode


def build_encoders(
    registry: ModalityRegistry,
    modalities: Sequence[str],
    root: str | Path = ".",
    overrides: dict[str, str] | None = None,
    device: str = "cpu",
    report: PretokenizeReport | None = None,
    precision: str = "auto",
) -> tuple[dict[str, EncodeFn], TokenDatasetInfo]:
    """Load each modality's tokenizer -> (encode functions, the token dataset's info). Patch
    modalities (``patch_size`` set) and box maps (``box_labels`` set) need no tokenizer. ``precision``: image encoders under bf16
    autocast (how the shipped model's data was made, on a bf16-capable CPU) or in fp32 (on CPUs
    without bf16 convolutions fp32 is 5-40x faster; about 2% of the tokens differ); ``auto``: bf16
    where the device runs it natively (:mod:`fourm.utils.precision`)."""
    precision = resolve_precision(precision, device)
    report = report if report is not None else PretokenizeReport()
    # raw data is sized on import: another size is refused, not resized
    factory = CodecFactory(device=device, precision=precision, resize=False, strict_text=False)
    encoders: dict[str, EncodeFn] = {}
    infos: dict[str, ModalityTokens] = {}
    specials = None
    for name in modalities:
        spec = registry[name]
        if spec.patch_size is not None or spec.box_labels is not None:  # no tokenizer: pixel patches, box maps
            encoders[name] = codec_encoder(factory.codec(spec, None, spec.length))
            if spec.patch_size is not None:
                infos[name] = ModalityTokens(kind="image", vocab_size=LEVELS, length=spec.num_tokens, patch_dim=spec.patch_dim)
            else:
                infos[name] = ModalityTokens(kind="image", vocab_size=spec.vocab_size, length=spec.num_tokens, input_only=True)
            continue
        path = resolve_tokenizer_path(spec, root, overrides)
        codec = factory.codec(spec, path, spec.length)
        if isinstance(codec, DynamicImageCodec):  # rgb as [pos][code] pairs (fourm.codecs.dynamic)
            if (codec.length, codec.vocab_size) != (spec.max_length, spec.vocab_size):
                raise FourmError(
                    f"tokenizer {path} gives rows of {codec.length} ids of vocabulary {codec.vocab_size}, but modality "
                    f"'{name}' declares max_length {spec.max_length} and vocab_size {spec.vocab_size}"
                )
            encoders[name] = sequence_encoder(codec, report)
            if specials is None:  # the text vocabulary's specials (a text tokenizer's, when there is one, win)
                specials = SequenceSpecialTokens(pad=codec.pad, sos=codec.sos, eos=codec.eos, sentinels=codec.sentinel_ids)
            infos[name] = ModalityTokens(kind="sequence", vocab_size=codec.vocab_size, length=spec.length)
            continue
        if spec.kind == "sequence":
            tok = codec.tokenizer
            if tok.vocab_size > spec.vocab_size:
                raise FourmError(
                    f"text tokenizer {path} has {tok.vocab_size} tokens, more than modality '{name}' "
                    f"declares (vocab_size {spec.vocab_size})"
                )
            encoders[name] = sequence_encoder(codec, report)
            specials = SequenceSpecialTokens(pad=tok.pad_id, sos=tok.sos_id, eos=tok.eos_id, sentinels=tok.sentinel_ids)
            # the text tokenizer's real vocabulary (the registry's vocab_size is an upper bound), so models
            # trained on this data get embeddings and heads of the size actually used
            infos[name] = ModalityTokens(kind="sequence", vocab_size=tok.vocab_size, length=spec.length)
            continue
        _check_tokens(path, codec.tokenizer, spec, codec.length if spec.token_level else None)
        encoders[name] = codec_encoder(codec)
        infos[name] = ModalityTokens(kind=spec.kind, vocab_size=spec.vocab_size, length=spec.length)
    return encoders, TokenDatasetInfo(modalities=infos, specials=specials)


def dataset_fingerprint(path: str | Path) -> str:
    """Hash of the names, sizes and modification times of every file of dataset directory ``path``
    (cheap: nothing is read; a rewritten dataset gets new times)."""
    from fourm.utils.outputs import MARKER

    root = Path(path)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name == MARKER:
                continue
            st = os.stat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def content_fingerprint(path: str | Path) -> str:
    """Hash of the contents of file or directory ``path`` (tokenizer weights, vocabularies, configs)."""
    from fourm.utils.outputs import MARKER

    root = Path(path)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER)
    h = hashlib.sha256()
    for file in files:
        h.update(str(file.relative_to(root) if file != root else "").encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def tokenizer_paths(
    registry: ModalityRegistry, modalities: Sequence[str], root: str | Path = ".", overrides: dict[str, str] | None = None
) -> dict[str, Path]:
    """modality -> tokenizer directory of the modalities that have one (patches and box maps have none)."""
    return {m: resolve_tokenizer_path(registry[m], root, overrides) for m in modalities if registry[m].needs_tokenizer}


def _save_shard(path: Path, ids: list[str], columns: dict[str, list[list[int] | None]]) -> None:
    """One shard as JSON lines of {id, modality: ids | null}, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for i, sid in enumerate(ids):
                f.write(json.dumps({"id": sid, **{m: col[i] for m, col in columns.items()}}) + "\n")


def _read_shard(path: Path):
    with open(path) as f:
        for line in f:
            yield json.loads(line)


def pretokenize(
    raw_path: str | Path,
    out: str | Path,
    encoders: dict[str, EncodeFn],
    info: TokenDatasetInfo,
    registry: ModalityRegistry,
    batch_size: int = 64,
    shard_size: int = 1024,
    splits: Sequence[str] | None = None,
    report: PretokenizeReport | None = None,
    settings: dict | None = None,
    tokenizers: dict[str, str | Path] | None = None,
    rank: int = 0,
    world: int = 1,
    wait_seconds: float = 3600.0,
) -> PretokenizeReport:
    """Encode every sample of ``raw_path`` with ``encoders`` and write a token dataset to ``out``.
    With ``world`` > 1 processes (e.g. ``accelerate launch``), process ``rank`` encodes shards
    ``rank, rank + world, ...``; process 0 writes the manifest, waits for every shard and assembles
    ``out`` (the same dataset as one process makes); the others return after their shards.
    ``settings`` (e.g. a non-default precision) join the manifest of ``<out>.partial/``, with a
    fingerprint of the inputs: the raw dataset (file names, sizes, times), each modality's spec and
    the contents of its tokenizer (``tokenizers``: modality -> directory). A resume whose settings or
    inputs differ is refused, naming what changed, instead of mixing shards made differently.

    Phases: :func:`load_splits`, :func:`build_manifest`, :func:`claim_partial_run`, then
    :func:`encode_split` per split and :func:`assemble_token_dataset` (process 0)."""
    report = report if report is not None else PretokenizeReport()
    raw, splits = load_splits(raw_path, splits)
    if not 0 <= rank < world:
        raise FourmError(f"process rank {rank} is not in [0, {world})")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(raw_path, encoders, registry, shard_size, settings, tokenizers)
    claim_partial_run(partial, manifest, rank, wait_seconds)
    shard_paths = {
        split: encode_split(
            RawSamples(raw[split]),
            split,
            partial,
            encoders,
            registry,
            batch_size,
            shard_size,
            report,
            rank,
            world,
        )
        for split in splits
    }
    if rank == 0:
        assemble_token_dataset(out, partial, shard_paths, info, wait_seconds)
    return report


def load_splits(raw_path: str | Path, splits: Sequence[str] | None = None) -> tuple[Any, list[str]]:
    """(the raw dataset at ``raw_path``, the splits to tokenize: ``splits`` or all of its splits).
    Checked before any work, since an empty or missing split would otherwise fail at the very end."""
    raw = load_raw_dataset(raw_path)
    splits = list(splits or raw.keys())
    for split in splits:
        if split not in raw:
            raise FourmError(f"raw dataset {raw_path} has no split '{split}' (splits: {', '.join(raw)})")
        if len(raw[split]) == 0:
            raise FourmError(f"split '{split}' of {raw_path} is empty (nothing to tokenize)")
    return raw, splits


def build_manifest(
    raw_path: str | Path,
    encoders: dict[str, EncodeFn],
    registry: ModalityRegistry,
    shard_size: int,
    settings: dict | None = None,
    tokenizers: dict[str, str | Path] | None = None,
) -> dict:
    """The manifest of a run's ``<out>.partial/``: the modalities, shard size, raw dataset path and
    ``settings``, with ``inputs``: fingerprints of the raw dataset, of each modality's spec and of
    the contents of each tokenizer (``tokenizers``: modality -> directory)."""
    inputs = {f"raw dataset {raw_path}": dataset_fingerprint(raw_path)}
    for m in sorted(encoders):
        spec = json.dumps(registry[m].to_dict(), sort_keys=True, default=str)
        inputs[f"modality '{m}'"] = hashlib.sha256(spec.encode()).hexdigest()[:16]
    for m, path in sorted((tokenizers or {}).items()):
        inputs[f"tokenizer of '{m}' ({path})"] = content_fingerprint(path)
    return {
        "modalities": sorted(encoders), "shard_size": shard_size, "raw": str(Path(raw_path).resolve()),
        **(settings or {}), "inputs": inputs,
    }  # fmt: skip


def claim_partial_run(partial: Path, manifest: dict, rank: int = 0, wait_seconds: float = 3600.0) -> None:
    """Make ``partial`` the home of the run that ``manifest`` describes. Process 0 refuses a
    leftover interrupted run with another manifest (naming what changed) and writes its own; any
    other process waits (up to ``wait_seconds``) for process 0's manifest and refuses a different one."""
    manifest_path = partial / "manifest.json"
    if rank > 0:  # process 0 checks (and may refuse) the partial run; the others follow its manifest
        _wait_for([manifest_path], wait_seconds, f"process 0's manifest {manifest_path}")
        if _read_manifest(manifest_path) != manifest:
            raise FourmError(
                f"process {rank}: {manifest_path} was written with other settings or inputs than this process's"
            )
        return
    claim_partial(partial, manifest)


def encode_split(
    samples: Sequence[dict],
    split: str,
    partial: Path,
    encoders: dict[str, EncodeFn],
    registry: ModalityRegistry,
    batch_size: int,
    shard_size: int,
    report: PretokenizeReport,
    rank: int = 0,
    world: int = 1,
) -> list[Path]:
    """Encode this process's shards of one split (shard k when k % ``world`` == ``rank``), each
    saved under ``partial/<split>/`` unless already there (a resumed run) -> the paths of all the
    split's shards, this process's and the others'."""
    n = len(samples)
    report.samples[split] = n
    paths = []
    bar = tqdm(total=n, desc=f"tokenize {split}", unit="sample")
    for k in range(math.ceil(n / shard_size)):
        start, stop = k * shard_size, min(n, (k + 1) * shard_size)
        path = partial / split / f"shard_{k:05d}.jsonl"
        paths.append(path)
        if k % world != rank:  # another process's shard
            bar.update(stop - start)
            continue
        if path.exists():
            report.shards_resumed += 1
            bar.update(stop - start)
            continue
        ids, columns = encode_samples(
            samples, start, stop, encoders, registry, batch_size, report, bar.update
        )
        _save_shard(path, ids, columns)
        report.shards_done += 1
    bar.close()
    return paths


def encode_samples(
    samples: Sequence[dict],
    start: int,
    stop: int,
    encoders: dict[str, EncodeFn],
    registry: ModalityRegistry,
    batch_size: int,
    report: PretokenizeReport,
    on_batch: Callable[[int], Any] | None = None,
) -> tuple[list[str], dict[str, list[list[int] | None]]]:
    """Encode ``samples[start:stop]`` in batches of ``batch_size`` -> (sample ids, {modality: token
    ids or None per sample}). A modality's value is read under its spec's ``data_key`` (default: its
    name); missing values are counted in ``report.missing``. ``on_batch(n)`` follows each batch."""
    ids: list[str] = []
    columns: dict[str, list] = {m: [] for m in encoders}
    for b in range(start, stop, batch_size):
        batch = [samples[i] for i in range(b, min(stop, b + batch_size))]
        ids.extend(str(s.get("id", i)) for i, s in zip(range(b, stop), batch))
        for m, encode in encoders.items():
            key = registry[m].data_key or m
            values = [s.get(key) for s in batch]
            report.missing[m] = report.missing.get(m, 0) + sum(v is None for v in values)
            columns[m].extend(encode(values))
        if on_batch is not None:
            on_batch(len(batch))
    return ids, columns


def assemble_token_dataset(
    out: Path,
    partial: Path,
    shard_paths: dict[str, list[Path]],
    info: TokenDatasetInfo,
    wait_seconds: float = 3600.0,
) -> None:
    """Process 0's last phase: wait (up to ``wait_seconds``) for every shard of every split, write
    the token dataset ``out`` from them and remove ``partial``."""
    _wait_for(
        [p for paths in shard_paths.values() for p in paths], wait_seconds, "the other processes' shards"
    )
    write_token_dataset(out, {split: _ShardStream(paths) for split, paths in shard_paths.items()}, info)
    shutil.rmtree(partial, ignore_errors=True)


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _wait_for(paths: list[Path], seconds: float, what: str) -> None:
    """Poll until every path exists; FourmError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        missing = [p for p in paths if not p.exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise FourmError(f"waited {seconds:.0f} s for {what}: {len(missing)} missing (first: {missing[0]})")
        time.sleep(0.2)


class _ShardStream:
    """Iterable over the rows of several shard files, with a length for progress bars."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._len = sum(sum(1 for _ in open(p)) for p in paths)

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        for p in self.paths:
            yield from _read_shard(p)
