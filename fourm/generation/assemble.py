"""Assemble a model bundle (see :mod:`fourm.generation.bundle`) from a trained FourM and the tokenizers
of an existing bundle, plus the tokenizers of modalities the model adds (e.g. after fine-tuning)::

    assemble_bundle("runs/finetune_ce/model", "runs/finetune_ce/bundle", base="models/world-default",
                    added=["configs/modalities/extra/caption_embedding.yaml"],
                    tokenizers={"caption_embedding": "runs/finetune_ce/tokenizers/caption_embedding"})

The new bundle holds ``model/`` (weights in fp16 unless ``half=False``), a copy of every tokenizer
the model's modalities use, and ``modalities.json`` (the base registry's entries of those modalities
plus the added ones), so ``FourMPipeline.from_pretrained(out)`` works on its own. It is checked by
loading every codec against the model before it is moved into place (atomically).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from fourm.errors import FourmError
from fourm.generation.bundle import load_codecs
from fourm.generation.bundle_layout import (
    MODEL_DIR,
    copy_part,
    load_registry,
    resolve_bundle,
    tokenizer_ref,
    write_bundle,
    write_registry,
)
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.model.config import FourMConfig, ModalityConfig
from fourm.model.fourm import CONFIG_NAME, WEIGHTS_NAME, FourM
from fourm.utils.half_weights import halve_safetensors


def _bundle_relative(name: str, ref: str) -> Path:
    """Where a tokenizer goes inside the bundle: its registry path when relative, else tokenizers/<name>."""
    path = Path(ref)
    if path.is_absolute() or ".." in path.parts:
        return Path(tokenizer_ref(name))
    return path


def assemble_bundle(
    model: str | Path,
    out: str | Path,
    base: str | Path | None = None,
    added: Sequence[str | Path] = (),
    tokenizers: Mapping[str, str | Path] | None = None,
    half: bool = True,
) -> Path:
    """Write the bundle ``out`` for the FourM directory ``model`` (module docstring); returns ``out``.

    ``base``: the bundle whose registry and tokenizers are reused (default: the shipped one);
    ``added``: modality YAMLs of modalities the base registry lacks; ``tokenizers``: name -> tokenizer
    directory, overriding the registry's path (relative to ``base``) for those modalities.
    """
    model, out = Path(model), Path(out)
    if not ((model / CONFIG_NAME).is_file() and (model / WEIGHTS_NAME).is_file()):
        raise FourmError(f"{model} is not a saved FourM (expected {CONFIG_NAME} and {WEIGHTS_NAME})")
    root = resolve_bundle(base)
    if out.resolve() == root.resolve():
        raise FourmError(f"the new bundle {out} would replace its base bundle; choose another output directory")
    config = FourM.check_saved(model)  # weights readable and matching the config, before any copy
    registry = load_registry(root)
    new_names = _add_modalities(registry, added)
    overrides = _tokenizer_overrides(config, registry, tokenizers)
    specs, copies = _bundle_specs(config, registry, root, overrides, new_names)
    with write_bundle(out) as tmp:
        model_copy = copy_part(tmp, MODEL_DIR, model)
        if half:
            for weights in sorted(model_copy.glob("*.safetensors")):
                halve_safetensors(weights)
        for dest, source in copies.items():
            copy_part(tmp, dest, source)
        bundle_registry = ModalityRegistry(specs.values())
        write_registry(tmp, bundle_registry)
        load_codecs(bundle_registry, config, tmp)  # every tokenizer fits the model, or FourmError
    return out


def _add_modalities(registry: ModalityRegistry, added: Sequence[str | Path]) -> set[str]:
    """Phase 1 of :func:`assemble_bundle`: the modality YAMLs ``added`` into ``registry`` (in place);
    -> the names that are new to it. The same modality again (a rebuild on its own base) is fine."""
    new_names = set()
    for spec in ModalityRegistry.from_files(added).values():
        if spec.name in registry:  # the same modality again (a rebuild on its own base) is fine
            if dataclasses.replace(registry[spec.name], tokenizer=None).to_dict() != spec.replace(tokenizer=None).to_dict():
                raise FourmError(
                    f"modality '{spec.name}' is already in the base bundle's registry with other settings; "
                    "do not add it again"
                )
            continue
        registry.add(spec)
        new_names.add(spec.name)
    return new_names


def _tokenizer_overrides(
    config: FourMConfig, registry: ModalityRegistry, tokenizers: Mapping[str, str | Path] | None
) -> dict[str, Path]:
    """Phase 2: the ``--tokenizer`` overrides (name -> directory), checked against the model, and
    every model modality checked to be in the registry."""
    overrides = {name: Path(p) for name, p in (tokenizers or {}).items()}
    unknown = [n for n in overrides if n not in config.modalities]
    if unknown:
        raise FourmError(f"--tokenizer for '{unknown[0]}': the model has no such modality (it has {', '.join(config.modalities)})")
    missing = [n for n in config.modalities if n not in registry]
    if missing:
        raise FourmError(
            f"the model's modality '{missing[0]}' is not in the base registry: pass its YAML with --add-modality"
        )
    return overrides


def _fit_tokens(spec: ModalitySpec, model: ModalityConfig, overridden: bool) -> ModalitySpec:
    """``spec`` with the model's token vocabulary and tokens per sample where a retrained tokenizer
    (``--tokenizer``) changed them (e.g. a 2,048-code rgb tokenizer, or one on a 16 x 16 grid, over a base
    with 1,024 codes on 8 x 8), so the bundle's registry never disagrees with its model; without an override
    such a difference is an error. Sequences share a text vocabulary of which a model may use fewer ids,
    so only the other kinds are compared."""
    if spec.kind == "sequence" or not spec.needs_tokenizer:
        return spec
    if spec.vocab_size == model.vocab_size and spec.num_tokens == model.length:
        return spec
    if not overridden:
        what = (
            f"a vocabulary of {spec.vocab_size}, the model {model.vocab_size}"
            if spec.vocab_size != model.vocab_size
            else f"{spec.num_tokens} tokens per sample, the model {model.length}"
        )
        raise FourmError(
            f"modality '{spec.name}': the base registry gives {what}; pass the tokenizer the model was "
            f"trained with (--tokenizer {spec.name}=DIR)"
        )
    return dataclasses.replace(spec, vocab_size=model.vocab_size, num_tokens=model.length)


def _bundle_specs(
    config: FourMConfig, registry: ModalityRegistry, root: Path, overrides: Mapping[str, Path], new_names: set[str]
) -> tuple[dict[str, ModalitySpec], dict[Path, Path]]:
    """Phase 3: the bundle's registry entries (name -> spec, tokenizer paths inside the bundle) and the
    tokenizer directories to copy (bundle-relative destination -> source directory)."""
    specs = {}
    copies: dict[Path, Path] = {}  # bundle-relative destination -> source directory
    for name in config.modalities:
        spec = _fit_tokens(registry[name], config.modalities[name], name in overrides)
        if not spec.needs_tokenizer:  # pixel patches or a box map: no tokenizer to copy
            specs[name] = spec
            continue
        if not spec.tokenizer and name not in overrides:
            if name not in new_names:  # the base bundle has none either (e.g. a converted ml-4m model): ids only
                specs[name] = spec
                continue
            raise FourmError(f"modality '{name}' has no tokenizer (set 'tokenizer' in its YAML or pass --tokenizer)")
        source = overrides.get(name) or (Path(spec.tokenizer) if Path(spec.tokenizer).is_absolute() else root / spec.tokenizer)
        if not source.is_dir():
            raise FourmError(f"tokenizer of '{name}' not found: {source}")
        dest = _bundle_relative(name, spec.tokenizer or tokenizer_ref(name))
        if copies.setdefault(dest, source.resolve()) != source.resolve():
            dest = Path(tokenizer_ref(name))  # two different tokenizers under one registry path
            copies[dest] = source.resolve()
        specs[name] = dataclasses.replace(spec, tokenizer=dest.as_posix())  # no re-check: ml-4m's names stay
    return specs, copies
