"""The files of a model bundle, in one place: the paths of its parts, reading each part (checked,
one-line FourmError naming the file) and writing a whole bundle atomically::

    models/world-default/
        model/              FourM.save_pretrained (config.json + model.safetensors)
        tokenizers/<name>/  one tokenizer directory per modality (tokenizers/text: the shared text one)
        modalities.json     the modality registry, tokenizer paths relative to the bundle (optional;
                            ``registry.json`` is its older name)
        generation.json     generation defaults per target (optional): {"targets": {modality: {field: value}}}

Reading::

    root = resolve_bundle("models/world-default")      # FourmError unless it is a bundle
    registry = load_registry(root)                      # modalities.json, else configs/modalities
    defaults = load_generation_defaults(root)           # {} without generation.json

Writing (nothing appears at ``out`` unless the block completes; an existing bundle is replaced)::

    with write_bundle(out) as tmp:
        model.save_pretrained(tmp / MODEL_DIR)
        tok.save_pretrained(tmp / tokenizer_ref("rgb"))
        write_registry(tmp, registry)                   # a ModalityRegistry or its JSON dict
        write_generation_defaults(tmp, {"rgb": {"guidance_scale": 3.0}})

Building the codecs of a bundle's modalities is :mod:`fourm.generation.bundle`'s part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, ModalitySpec, default_registry
from fourm.resources import DEFAULT_BUNDLE
from fourm.utils.atomic import atomic_dir, atomic_write_text
from fourm.utils.config import read_json_value, to_jsonable

MODEL_DIR = "model"
TOKENIZERS_DIR = "tokenizers"
REGISTRY_FILE = "modalities.json"
REGISTRY_FILES = (REGISTRY_FILE, "registry.json")
GENERATION_FILE = "generation.json"
ML4M_MAP = "ml4m_modalities.json"  # the record fourm-convert ml4m leaves in a bundle (and left in its old layout)

# ml-4m's modality names: fourm's (lower-case letters, digits, '_') plus an optional '@<size>' suffix
ML4M_NAME = re.compile(r"^[a-z][a-z0-9_]*@[0-9]+$")


# ------------------------------------------------------------------------------ paths
def tokenizer_ref(name: str) -> str:
    """The registry path (relative to the bundle) of the tokenizer directory named ``name``."""
    return f"{TOKENIZERS_DIR}/{name}"


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` holds a bundle with its own registry (``model/`` and ``modalities.json``)."""
    path = Path(path)
    return (path / MODEL_DIR).is_dir() and (path / REGISTRY_FILE).is_file()


def resolve_bundle(path: str | Path | None) -> Path:
    """The bundle directory: ``path`` (relative to the working directory) or :data:`DEFAULT_BUNDLE`."""
    root = DEFAULT_BUNDLE if path is None else Path(path).expanduser()
    hint = "; the default bundle is built by scripts/build_default_model.sh, or pass another one" if path is None else ""
    if not root.is_dir():
        raise FourmError(f"model bundle not found: {root}{hint}")
    if not (root / MODEL_DIR).is_dir() and (root / ML4M_MAP).is_file():
        raise FourmError(
            f"{root} is a model converted by an earlier fourm-convert ml4m (no {MODEL_DIR}/ directory): "
            "convert it again, fourm-convert ml4m now writes a bundle"
        )
    if not (root / MODEL_DIR).is_dir():
        raise FourmError(
            f"{root} is not a model bundle: it has no {MODEL_DIR}/ directory (expected model/ and tokenizers/){hint}"
        )
    return root


# ------------------------------------------------------------------------------ registry
def modality_spec(name: str, entry: Mapping) -> ModalitySpec:
    """The checked ModalitySpec of one registry entry. An ml-4m name with an ``@<size>`` suffix
    (``rgb@224``) is checked under its ``@``-free spelling, then kept as it is."""
    name = entry.get("name") or name  # as ModalityRegistry.from_dict: the entry's own name wins
    if not (isinstance(name, str) and ML4M_NAME.match(name)):
        return ModalitySpec.from_dict({"name": name, **entry})
    stand_in = {**entry, "name": name.replace("@", "_at_"), "data_key": entry.get("data_key") or name}
    return dataclasses.replace(ModalitySpec.from_dict(stand_in), name=name)


def registry_from_dict(data: Mapping[str, Mapping]) -> ModalityRegistry:
    """``ModalityRegistry.from_dict`` that also accepts ml-4m's modality names (:func:`modality_spec`)."""
    specs = []
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise FourmError(f"modality '{name}': expected a mapping, got {type(entry).__name__}")
        specs.append(modality_spec(name, entry))
    return ModalityRegistry(specs)


def load_registry(root: str | Path) -> ModalityRegistry:
    """The bundle's own registry file if it has one, else the repository's ``configs/modalities``."""
    for name in REGISTRY_FILES:
        path = Path(root) / name
        if path.is_file():
            data = read_json_value(path, "registry file", corrupt="corrupt registry file")
            if not isinstance(data, dict):
                raise FourmError(f"corrupt registry file {path}: expected a JSON object of modalities")
            try:
                return registry_from_dict(data)
            except FourmError as e:
                raise FourmError(f"{path}: {e}") from None
    return default_registry()


def write_registry(root: str | Path, registry: ModalityRegistry | Mapping[str, Mapping]) -> Path:
    """Write ``root/modalities.json`` atomically: a registry, or its JSON dict as it is (checked
    first: FourmError naming the entry that is not a valid registry entry)."""
    data = registry.to_dict() if isinstance(registry, ModalityRegistry) else registry
    registry_from_dict(data)  # every entry valid (ml-4m's names included)
    path = Path(root) / REGISTRY_FILE
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")
    return path


# ------------------------------------------------------------------------------ generation defaults
def load_generation_defaults(root: str | Path) -> dict[str, dict]:
    """The bundle's ``generation.json`` as {modality: {GenerationTarget field: value}} ({} without
    one); the fields are checked against the model by :class:`fourm.generation.pipeline.FourMPipeline`."""
    path = Path(root) / GENERATION_FILE
    if not path.is_file():
        return {}
    data = read_json_value(path, "generation defaults", corrupt="corrupt generation defaults")
    targets = data.get("targets") if isinstance(data, dict) else None
    unknown = sorted(set(data) - {"targets"}) if isinstance(data, dict) else []
    if not isinstance(targets, dict) or unknown:
        raise FourmError(
            f"{path}: expected a JSON object {{\"targets\": {{modality: {{field: value}}}}}}, got {json.dumps(data)[:80]}"
        )
    for name, fields in targets.items():
        if not isinstance(fields, dict):
            raise FourmError(f"{path}: targets.{name} must be an object of GenerationTarget fields, got {fields!r}")
    return {name: dict(fields) for name, fields in targets.items()}


def write_generation_defaults(root: str | Path, targets: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``root/generation.json`` ({"targets": targets}) atomically -> its path."""
    path = Path(root) / GENERATION_FILE
    atomic_write_text(path, json.dumps({"targets": to_jsonable(dict(targets))}, indent=2) + "\n")
    return path


# ------------------------------------------------------------------------------ writing a bundle
@contextlib.contextmanager
def write_bundle(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory to write a bundle into; when the block completes it replaces
    ``out`` (atomically), on an exception it is removed and ``out`` is left as it was."""
    with atomic_dir(out) as tmp:
        yield tmp


def copy_part(root: str | Path, ref: str | Path, source: str | Path) -> Path:
    """Copy the directory ``source`` (a model or a tokenizer) to ``root/ref`` -> the copy."""
    dest = Path(root) / ref
    shutil.copytree(source, dest)
    return dest


def write_json(root: str | Path, name: str, data: Any) -> Path:
    """Write another JSON part (e.g. :data:`ML4M_MAP`) atomically, as :func:`write_registry` does."""
    path = Path(root) / name
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n")
    return path
