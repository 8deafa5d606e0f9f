"""The stages of the recipe, each composed from the project's own APIs, and their bookkeeping.

Layout of ``<out>``::

    recipe.json            the settings and the time plan of the last run
    stages/<stage>.json    per finished stage: its inputs (fingerprints + settings) and seconds
    data/                  raw dataset (fourm-data import)
    tokenizers/<m>/        image tokenizers (fourm-tokenizer train; <m>/tokenizer is the model)
    tokenizers/text/       the caption vocabulary, when the shipped one fragments the captions
    text_vocab.json        tokens per caption, shipped vs trained vocabulary, and the choice
    tokens/                token dataset (fourm-data tokenize)
    masking.yaml           configs/masking/mixture_chain.yaml restricted to the run's modalities
    train/                 the FourM run (train.py), train/model the trained model, train/modalities.json
                           the run's registry (image modalities sized by --size: the bundle's base)
    bundle/                the self-contained bundle (fourm-bundle)
    report.json, report.png

A stage is skipped when its outputs exist and the inputs recorded when it finished equal its inputs
now (the upstream outputs' fingerprints, :func:`fourm.data.pretokenize.dataset_fingerprint` /
``content_fingerprint``, and its settings); a stage whose inputs changed is run again (its stale
output removed first), and so are the stages after it, whose inputs then change too.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fourm.errors import FourmError
from fourm.recipe.config import DEFAULT_SIZE, MIN_IMAGES, MIN_VAL, RecipeConfig, SizePlan, plan_minutes
from fourm.resources import DEFAULT_BUNDLE, shipped

COMMAND = "fourm-recipe"
RGB_TOKENIZER_CONFIG = "configs/tokenizers/{name}.yaml"
TRAIN_CONFIG = "configs/train/world_default.yaml"
MASKING_CONFIG = "configs/masking/mixture_chain.yaml"
EVAL_MASKING_CONFIG = "configs/masking/eval_fixed.yaml"
PIXELS_MODALITY = "configs/modalities/extra/rgb_pixels.yaml"
SHIPPED_TEXT = DEFAULT_BUNDLE / "tokenizers" / "text"
TEXT_MODALITIES = ("caption", "bboxes", "color_palette", "metadata")  # read by the shared text vocabulary


def repo_file(path: str) -> Path:
    """A shipped config (``configs/...``), wherever fourm is installed."""
    return shipped(path)


# ------------------------------------------------------------------------------------ bookkeeping
class Stages:
    """Records of finished stages under ``<out>/stages`` and the skip / re-run decision."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "stages"
        self.results: dict[str, str] = {}  # stage -> "ran" | "skipped"
        self.seconds: dict[str, float] = {}

    def _record(self, stage: str) -> dict | None:
        try:
            data = json.loads((self.dir / f"{stage}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run(self, stage: str, inputs: dict[str, Any], outputs: list[Path], work: Callable[[bool], None],
            minutes: float | None = None) -> None:
        """Run ``work(stale)`` unless ``outputs`` all exist and ``inputs`` match the record; record it."""
        from fourm.utils.atomic import atomic_write_text

        inputs = json.loads(json.dumps(inputs, default=str))
        record = self._record(stage)
        if record is not None and record.get("inputs") == inputs and all(p.exists() for p in outputs):
            print(f"[{stage}] skipped: done, inputs unchanged ({', '.join(p.name for p in outputs)})")
            self.results[stage] = "skipped"
            return
        stale = record is not None and record.get("inputs") != inputs
        if stale:
            old = record.get("inputs") or {}
            changed = sorted(k for k in set(old) | set(inputs) if old.get(k) != inputs.get(k))
            print(f"[{stage}] inputs changed ({', '.join(changed)}): running it again")
        budget = f" (budget {minutes:.1f} min)" if minutes is not None else ""
        print(f"[{stage}] running{budget}")
        (self.dir / f"{stage}.json").unlink(missing_ok=True)  # a kill mid-way leaves no record
        t0 = time.monotonic()
        work(stale)
        self.seconds[stage] = round(time.monotonic() - t0, 2)
        self.results[stage] = "ran"
        atomic_write_text(self.dir / f"{stage}.json",
                          json.dumps({"inputs": inputs, "seconds": self.seconds[stage]}, indent=2) + "\n")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _remove(path: Path) -> None:
    """Remove a stale output of this recipe (a folder inside ``<out>``) and its lock-free leftovers."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ------------------------------------------------------------------------------------ preflight
def preflight(cfg: RecipeConfig) -> dict[str, int]:
    """Check the imagefolder before any work: images, a caption column, enough images for a val
    split. -> {"images": n, "train": n, "val": n} (candidates: unreadable files are skipped later)."""
    from fourm.data.importer import split_ids
    from fourm.data.user import ImageFolderSource, LoadReport
    from fourm.data.user.imagefolder import CAPTION_COLUMNS, METADATA_FILE

    root = Path(cfg.root)
    source = ImageFolderSource(root, cfg.size, LoadReport(), split_column=cfg.split_column)
    if not source.ids:
        raise FourmError(f"no images found under {root} (expected images and a {METADATA_FILE} with a text column)")
    if "caption" not in source.keys:
        where = f"{root / METADATA_FILE}" if (root / METADATA_FILE).is_file() else f"{root} (no {METADATA_FILE})"
        raise FourmError(
            f"no captions column in {where}: expected a '{CAPTION_COLUMNS[0]}' (or '{CAPTION_COLUMNS[1]}') "
            "column naming each image's caption"
        )
    n = len(source.ids)
    if source.splits is not None:
        val = sum(1 for i in source.ids if source.splits[i] == "val")
        how = f"--split-column {cfg.split_column}" if cfg.split_column else "the val/ folder"
    else:
        val = len(split_ids(source.ids, cfg.val_fraction, cfg.seed)[1])
        how = f"--val-fraction {cfg.val_fraction:g}"
    if n < MIN_IMAGES or val < MIN_VAL or n - val < MIN_IMAGES - MIN_VAL:
        raise FourmError(
            f"too few images for a val split: {n} images under {root}, {val} of them val by {how}; the recipe "
            f"needs at least {MIN_IMAGES} images and {MIN_VAL} val images (add images or raise --val-fraction)"
        )
    return {"images": n, "train": n - val, "val": val}


def check_size(cfg: RecipeConfig) -> None:
    """Refuse to resume an ``--out`` made at another ``--size`` (every stage would change) unless
    ``--overwrite``; a folder from before ``--size`` existed was made at 64."""
    try:
        recorded = json.loads((Path(cfg.out) / "recipe.json").read_text()).get("config", {})
        before = int(recorded.get("size", DEFAULT_SIZE))
    except (OSError, ValueError, TypeError, AttributeError):
        return  # no (readable) record: a new folder, or claim_output refuses it later
    if before != cfg.size and not cfg.overwrite:
        raise FourmError(
            f"--out {cfg.out} was made at --size {before}, this run asks for --size {cfg.size}: pass --overwrite "
            f"to redo every stage at {cfg.size} (its data, tokenizers, tokens, model and bundle are replaced), "
            f"or choose another --out"
        )
    if before != cfg.size:
        print(f"--overwrite: {cfg.out} was made at --size {before}; every stage runs again at --size {cfg.size}")


# ------------------------------------------------------------------------------------ the recipe
def run_recipe(cfg: RecipeConfig) -> dict[str, Any]:
    """Run (or resume) every stage; -> {"stages": {stage: ran|skipped}, "report": report dict}."""
    from fourm.utils.atomic import atomic_write_text
    from fourm.utils.outputs import claim_output

    cfg.validate()
    out = Path(cfg.out)
    check_size(cfg)
    counts = preflight(cfg)
    plan = plan_minutes(cfg.minutes)
    print(f"recipe for {cfg.root}: {counts['images']} images ({counts['train']} train, {counts['val']} val), "
          f"modalities {', '.join(cfg.modalities)}, {cfg.minutes:g} minutes")
    sp = cfg.plan
    print(f"size {sp.size}: {sp.size}x{sp.size} images, {sp.grid}x{sp.grid} rgb tokens (tokenizer downsampling "
          f"{sp.downsample}), {sp.size // sp.patch}x{sp.size // sp.patch} pixel patches of {sp.patch} px")
    print(f"{'stage':<12}{'share':>7}{'minutes':>9}")
    for stage, share, minutes in plan:
        print(f"{stage:<12}{share:>7.0%}{minutes:>9.1f}")
    minutes = {stage: m for stage, _, m in plan}

    def recognize(path: Path) -> bool:
        return (path / "recipe.json").is_file()

    with claim_output(out, COMMAND, [("--root", cfg.root)], recognize=recognize):
        atomic_write_text(out / "recipe.json", json.dumps(
            {"config": cfg.to_dict(), "plan": [{"stage": s, "share": sh, "minutes": round(m, 3)} for s, sh, m in plan]},
            indent=2) + "\n")  # fmt: skip
        stages = Stages(out)
        ctx = _Context(cfg, out, minutes)
        ctx.import_data(stages)
        ctx.train_tokenizers(stages)
        ctx.text_vocabulary(stages)
        ctx.tokenize(stages)
        ctx.train_model(stages)
        ctx.bundle(stages)
        report = ctx.report(stages)
    ran = [s for s, r in stages.results.items() if r == "ran"]
    print(f"done: {out / 'bundle'} (report {out / 'report.json'}, {out / 'report.png'}); "
          f"stages run: {', '.join(ran) or 'none (all up to date)'}")
    return {"stages": dict(stages.results), "report": report}


class _Context:
    """The stages, sharing the settings, paths and split sizes of one run."""

    def __init__(self, cfg: RecipeConfig, out: Path, minutes: dict[str, float]) -> None:
        self.cfg, self.out, self.minutes = cfg, out, minutes
        self.data = out / "data"
        self.tokens = out / "tokens"
        self.run_dir = out / "train"
        self.model = self.run_dir / "model"
        self.bundle_dir = out / "bundle"
        self.masking = out / "masking.yaml"
        self.text_report = out / "text_vocab.json"
        self.trained_text = out / "tokenizers" / "text"

    # -------------------------------------------------------------- helpers
    def tokenizer_dir(self, modality: str) -> Path:
        return self.out / "tokenizers" / modality

    def data_fingerprint(self) -> str:
        from fourm.data.pretokenize import dataset_fingerprint

        return dataset_fingerprint(self.data)

    def split_sizes(self) -> dict[str, int]:
        from fourm.data.raw_dataset import load_raw_dataset

        return {split: len(ds) for split, ds in load_raw_dataset(self.data).items()}

    def text_tokenizer(self) -> Path:
        """The vocabulary the text stage chose."""
        choice = json.loads(self.text_report.read_text())["choice"]
        return self.trained_text if choice == "trained" else SHIPPED_TEXT

    def modalities(self) -> list[str]:
        """The model's modalities: the plan's, plus rgb read as pixel patches."""
        return [*self.cfg.modalities, "rgb_pixels"]

    def registry(self):
        """The run's modalities, image ones sized by ``--size`` (:func:`sized_registry`)."""
        from fourm.modalities import ModalityRegistry, default_registry

        registry = default_registry().subset(self.cfg.modalities)
        for spec in ModalityRegistry.from_files([repo_file(PIXELS_MODALITY)]).values():
            registry.add(spec)
        return sized_registry(registry, self.cfg.plan)

    def tokenizer_overrides(self) -> dict[str, str]:
        text = str(self.text_tokenizer().resolve())
        paths = {m: str((self.tokenizer_dir(m) / "tokenizer").resolve()) for m in self.cfg.image_modalities}
        paths.update({m: text for m in self.cfg.modalities if m in TEXT_MODALITIES})
        return paths

    # -------------------------------------------------------------- 1. import
    def import_data(self, stages: Stages) -> None:
        from fourm.data.importer import ImportSettings, import_dataset
        from fourm.data.pretokenize import dataset_fingerprint

        cfg = self.cfg
        argv = ["import", "--source", "imagefolder", "--root", str(cfg.root), "--out", str(self.data),
                "--size", str(cfg.size), "--val-fraction", str(cfg.val_fraction), "--seed", str(cfg.seed)]  # fmt: skip
        if cfg.split_column:
            argv += ["--split-column", cfg.split_column]
        if cfg.derived:
            argv += ["--derive", ",".join(cfg.derived)]
        inputs = {"root": dataset_fingerprint(cfg.root), "argv": argv[6:]}

        def work(stale: bool) -> None:
            # fourm-data import (the settings of argv): claims data/, replaces it atomically
            import_dataset(ImportSettings(source="imagefolder", root=Path(cfg.root), out=Path(self.data), size=cfg.size,
                                          val_fraction=cfg.val_fraction, seed=cfg.seed, split_column=cfg.split_column or None,
                                          derive=",".join(cfg.derived) if cfg.derived else None))  # fmt: skip
            sizes = self.split_sizes()
            if sizes.get("val", 0) < 2 or sizes.get("train", 0) < 2:
                raise FourmError(
                    f"too few images could be loaded for a val split ({', '.join(f'{s} {n}' for s, n in sizes.items())}); "
                    "see the import report above"
                )

        stages.run("import", inputs, [self.data], work, self.minutes["import"])

    # -------------------------------------------------------------- 2. image tokenizers
    def tokenizer_settings(self, modality: str, n_train: int) -> tuple[dict, int, float]:
        """(config mapping, steps, minutes) of the image tokenizer of ``modality``."""
        from fourm.utils.config import read_mapping
        from fourm.utils.precision import resolve_precision

        cfg = self.cfg
        data = sized_tokenizer_config(read_mapping(repo_file(RGB_TOKENIZER_CONFIG.format(name=modality))), cfg.plan)
        train = data["train"]
        train["mixed_precision"] = "bf16" if resolve_precision("auto", cfg.device) == "bf16" else "no"
        train["seed"] = cfg.seed
        if cfg.tiny:  # test shapes: a few channels (the size's grid of 1024 codes stays: the registry's)
            data.update(width=8, channel_mult=[1] * cfg.plan.levels)
            train.update(batch_size=16, eval_every=1000, eval_samples=16, warmup_steps=1)
        batch = int(train.get("batch_size", 32))
        base_steps = int(train.get("steps", 6000))
        if cfg.tokenizer_steps is not None:
            steps = cfg.tokenizer_steps
        else:  # epochs over the user's images, at least a few hundred steps, at most the base recipe's
            steps = min(base_steps, max(300, math.ceil(cfg.tokenizer_epochs * n_train / batch)))
        train["warmup_steps"] = min(int(train.get("warmup_steps", 100)), max(1, steps // 10))
        train["eval_every"] = min(int(train.get("eval_every", 500)), steps)
        minutes = self.minutes["tokenizers"] / len(cfg.image_modalities)
        return data, steps, minutes

    def train_tokenizers(self, stages: Stages) -> None:
        from fourm.data.raw_dataset import load_raw_dataset

        n_train = self.split_sizes()["train"]
        for modality in self.cfg.image_modalities:
            data, steps, minutes = self.tokenizer_settings(modality, n_train)
            out = self.tokenizer_dir(modality)
            inputs = {"data": self.data_fingerprint(), "config": _digest(data), "steps": steps,
                      "max_minutes": round(minutes, 4)}  # fmt: skip

            def work(stale: bool, modality=modality, data=data, steps=steps, minutes=minutes, out=out) -> None:
                from fourm.utils.outputs import claim_output, is_trained_tokenizer
                from tokenizers_zoo.image import ImageTokenizerConfig
                from tokenizers_zoo.image.trainer import train_image_tokenizer

                if stale:
                    _remove(out)
                tok_cfg = ImageTokenizerConfig.from_dict(data)
                splits = load_raw_dataset(self.data)
                print(f"{modality} tokenizer: {steps} steps at most, {minutes:.1f} min at most (LR follows wall time)")
                with claim_output(out, "fourm-tokenizer train", [("--data", self.data)], recognize=is_trained_tokenizer):
                    result = train_image_tokenizer(tok_cfg, splits["train"], splits["val"], out, steps=steps,
                                                   max_minutes=minutes)  # fmt: skip
                final = {k: round(v, 4) for k, v in result["final"].items() if isinstance(v, float)}
                print(f"{modality} tokenizer: {json.dumps(final)}")

            stages.run(f"tokenizer_{modality}", inputs, [out / "tokenizer"], work, minutes)

    # -------------------------------------------------------------- 3. text vocabulary
    def text_vocabulary(self, stages: Stages) -> None:
        from fourm.data.pretokenize import content_fingerprint

        shipped = content_fingerprint(SHIPPED_TEXT) if SHIPPED_TEXT.is_dir() else None
        inputs = {"data": self.data_fingerprint(), "shipped": shipped, "threshold": self.cfg.text_threshold}

        def work(stale: bool) -> None:
            from fourm.data.raw_dataset import RawSamples, load_raw_dataset
            from fourm.utils.atomic import atomic_write_text
            from fourm.utils.outputs import claim_output, is_saved_model
            from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

            splits = load_raw_dataset(self.data)
            train = RawSamples(splits["train"])
            val = RawSamples(splits["val"])
            captions = [s["caption"] for s in (val[i] for i in range(len(val))) if s.get("caption")]
            trained = TextTokenizer.train(corpus_from_samples(train[i] for i in range(len(train))), vocab_size=1024)
            measured = {"trained": _caption_stats(trained, captions)}
            if SHIPPED_TEXT.is_dir():
                measured["shipped"] = _caption_stats(TextTokenizer.from_pretrained(SHIPPED_TEXT), captions)
            ratio = measured["shipped"]["tokens_per_caption"] / measured["trained"]["tokens_per_caption"] if "shipped" in measured else None
            if ratio is None:
                choice, why = "trained", f"no shipped vocabulary at {SHIPPED_TEXT}"
            elif ratio > self.cfg.text_threshold:
                choice, why = "trained", f"the shipped vocabulary needs {ratio:.2f}x the tokens (> {self.cfg.text_threshold:g}x)"
            elif measured["shipped"]["unknown_fraction"] > 0.01:
                choice, why = "trained", f"the shipped vocabulary maps {measured['shipped']['unknown_fraction']:.1%} of the tokens to [UNK]"
            else:
                choice, why = "shipped", f"the shipped vocabulary needs {ratio:.2f}x the tokens (<= {self.cfg.text_threshold:g}x)"
            for name, stats in measured.items():
                print(f"{name} vocabulary ({stats['vocab_size']} tokens): {stats['tokens_per_caption']:.2f} tokens per "
                      f"held-out caption, {stats['unknown_fraction']:.1%} [UNK]")  # fmt: skip
            print(f"text vocabulary: {choice} ({why})")
            if stale or choice == "shipped":
                _remove(self.trained_text)
            if choice == "trained":
                with claim_output(self.trained_text, "fourm-tokenizer train-text", [("--data", self.data)],
                                  recognize=is_saved_model):  # fmt: skip
                    trained.save_pretrained(self.trained_text)
            report = {"captions": len(captions), **measured, "ratio": ratio, "choice": choice, "reason": why}
            atomic_write_text(self.text_report, json.dumps(report, indent=2) + "\n")

        stages.run("text", inputs, [self.text_report], work, self.minutes["text"])

    # -------------------------------------------------------------- 4. tokenize
    def tokenize(self, stages: Stages) -> None:
        from fourm.data.pretokenize import content_fingerprint

        overrides = self.tokenizer_overrides()
        inputs = {"data": self.data_fingerprint(), "modalities": self.modalities(), "size": self.cfg.size,
                  **{f"tokenizer {m}": content_fingerprint(p) for m, p in sorted(overrides.items())}}  # fmt: skip

        def work(stale: bool) -> None:
            from fourm.data.pretokenize import PretokenizeReport, build_encoders, pretokenize, tokenizer_paths
            from fourm.utils.outputs import claim_output, is_token_dataset
            from fourm.utils.precision import resolve_precision

            if stale:
                _remove(self.tokens)
                _remove(self.tokens.with_name(self.tokens.name + ".partial"))
            registry, names = self.registry(), self.modalities()
            paths = tokenizer_paths(registry, names, ".", overrides)
            precision = resolve_precision("auto", self.cfg.device)
            report = PretokenizeReport()
            inputs = [("--data", self.data)] + [(f"tokenizer of '{m}'", p) for m, p in paths.items()]
            with claim_output(self.tokens, "fourm-data tokenize", inputs, recognize=is_token_dataset):
                encoders, info = build_encoders(registry, names, ".", overrides, self.cfg.device, report, precision)
                settings = {"precision": precision} if precision != "bf16" else None
                pretokenize(self.data, self.tokens, encoders, info, registry, 64, 1024, report=report,
                            settings=settings, tokenizers=paths)  # fmt: skip
            print(f"tokens: {report.summary()}")

        stages.run("tokenize", inputs, [self.tokens], work, self.minutes["tokenize"])

    # -------------------------------------------------------------- 5. train
    def masking_config(self) -> dict:
        """configs/masking/mixture_chain.yaml with the entries (and per-modality settings) of
        modalities this run lacks removed, and smaller budgets in tiny mode."""
        from fourm.data.masking.config import AlphaConfig
        from fourm.utils.config import read_mapping

        present = set(self.modalities())
        data = read_mapping(repo_file(MASKING_CONFIG))
        for key in ("min_input_tokens", "max_input_tokens", "min_target_tokens", "max_target_tokens"):
            if isinstance(data.get(key), dict):
                data[key] = {m: v for m, v in data[key].items() if m in present}
        mixture = []
        for entry in data.get("mixture", []):
            entry = dict(entry)
            for side in ("input", "target"):
                entry[f"{side}_alphas"] = {m: a for m, a in (entry.get(f"{side}_alphas") or {}).items() if m in present}
            if all(AlphaConfig.chooses(entry.get(f"{s}_alpha", 1.0), entry[f"{s}_alphas"]) for s in ("input", "target")):
                mixture.append(entry)
        data["mixture"] = mixture
        budget = self.budget()
        if budget is not None:
            data.update(input_budget=budget, target_budget=budget)
        return data

    def budget(self) -> int | None:
        """The masking budgets of the run (None: the masking configs' own)."""
        return 32 if self.cfg.tiny else self.cfg.plan.budget

    def train_settings(self, n_train: int) -> dict:
        """The training config (a TrainConfig mapping) from configs/train/world_default.yaml."""
        from fourm.utils.config import read_mapping

        cfg = self.cfg
        data = read_mapping(repo_file(TRAIN_CONFIG))
        data["data"] = {"datasets": [{"path": str(self.tokens), "weight": 1.0}], "modalities": None,
                        "train_split": "train", "val_split": "val", "val_samples": 256}  # fmt: skip
        model = data.setdefault("model", {})
        model.update(preset="tiny", init_from=None)
        if cfg.tiny:
            model["overrides"] = {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2, "tie_embeddings": True}
        data["masking"] = {"train": str(self.masking), "eval": str(repo_file(EVAL_MASKING_CONFIG)), "eval_tasks": {}}
        budget = self.budget()
        if budget is not None:
            data["masking"].update(input_budget=budget, target_budget=budget)
        batch = min(int(data.get("batch_size", 32)), cfg.plan.train_batch, n_train) if not cfg.tiny else min(8, n_train)
        base_steps = int(data.get("steps", 6000))
        if cfg.train_steps is not None:
            steps = cfg.train_steps
        else:
            steps = min(base_steps, max(100, math.ceil(cfg.epochs * n_train / batch)))
        optim = data.setdefault("optim", {})
        optim["warmup_steps"] = min(int(optim.get("warmup_steps", 200)), max(1, steps // 10))
        data.update(
            batch_size=batch, steps=steps, max_minutes=round(self.minutes["train"], 4), eval_every=0,
            eval_batches=None, checkpoint_every=max(1, min(250, steps // 4)), keep_checkpoints=1,
            log_every=max(1, min(20, steps // 5)), seed=cfg.seed, output_dir=str(self.run_dir), num_workers=0,
            tensorboard=False, precision="auto",
        )  # fmt: skip
        return data

    def train_model(self, stages: Stages) -> None:
        from fourm.data.pretokenize import dataset_fingerprint
        from fourm.utils.atomic import atomic_write_text

        masking = self.masking_config()
        settings = self.train_settings(self.split_sizes()["train"])
        inputs = {"tokens": dataset_fingerprint(self.tokens), "masking": _digest(masking), "config": _digest(settings)}

        def work(stale: bool) -> None:
            import yaml

            from fourm.training.config import TrainConfig
            from fourm.training.loop import train

            if stale:
                _remove(self.run_dir)
            atomic_write_text(self.masking, "# generated by fourm-recipe from " + MASKING_CONFIG
                              + ", restricted to this run's modalities\n" + yaml.safe_dump(masking, sort_keys=False))
            config = TrainConfig.from_dict(settings)
            resume = "auto" if (self.run_dir / "checkpoints").is_dir() else None
            print(f"FourM: {config.steps} steps of {config.batch_size} at most, {config.max_minutes:.1f} min at most"
                  + (" (resuming)" if resume else ""))
            result = train(config, resume=resume)
            if result.final_model is None:
                raise FourmError(f"training stopped at step {result.step} without a final model; run the recipe again to resume")
            print(f"FourM: {result.step} steps, model {result.final_model}")

        stages.run("train", inputs, [self.model], work, self.minutes["train"])

    # -------------------------------------------------------------- 6. bundle
    def bundle(self, stages: Stages) -> None:
        from fourm.data.pretokenize import content_fingerprint

        overrides = {m: p for m, p in self.tokenizer_overrides().items()}
        registry = self.registry()
        inputs = {"model": content_fingerprint(self.model), "registry": _digest(registry.to_dict()),
                  **{f"tokenizer {m}": content_fingerprint(p) for m, p in sorted(overrides.items())}}  # fmt: skip

        def work(stale: bool) -> None:
            from fourm.generation.assemble import assemble_bundle
            from fourm.generation.bundle import REGISTRY_FILE
            from fourm.utils.atomic import atomic_write_text
            from fourm.utils.outputs import claim_output, is_model_bundle

            # base: the run directory, with the run's registry (its image modalities sized by --size)
            # as its modalities.json; every tokenizer is given explicitly, nothing else comes from the base
            atomic_write_text(self.run_dir / REGISTRY_FILE, json.dumps(registry.to_dict(), indent=2) + "\n")
            inputs = [("model", self.model)] + [(f"--tokenizer {m}=", p) for m, p in overrides.items()]
            with claim_output(self.bundle_dir, "fourm-bundle", inputs, overwrite=stale, recognize=is_model_bundle, flag="out"):
                assemble_bundle(self.model, self.bundle_dir, base=self.run_dir, tokenizers=overrides)
            print(f"bundle: {self.bundle_dir}")

        stages.run("bundle", inputs, [self.bundle_dir / "model"], work, self.minutes["bundle"])

    # -------------------------------------------------------------- 7. report
    def report(self, stages: Stages) -> dict:
        from fourm.data.pretokenize import content_fingerprint, dataset_fingerprint
        from fourm.recipe.report import MEASURES

        report_json, report_png = self.out / "report.json", self.out / "report.png"
        inputs = {"bundle": content_fingerprint(self.bundle_dir), "data": self.data_fingerprint(),
                  "tokens": dataset_fingerprint(self.tokens), "measures": MEASURES}  # fmt: skip

        def work(stale: bool) -> None:
            from fourm.recipe.report import write_report

            write_report(self, report_json, report_png)

        stages.run("report", inputs, [report_json, report_png], work, self.minutes["report"])
        report = json.loads(report_json.read_text())
        report["stages"] = dict(stages.results)
        return report


def sized_registry(registry, plan: SizePlan):
    """``registry`` with its image modalities fitted to ``plan``: tokenized images get the plan's
    image side and token grid, a pixel-patch modality its image side and patch (the same grid)."""
    import dataclasses

    from fourm.modalities import ModalityRegistry

    specs = []
    for spec in registry.values():
        if spec.kind == "image" and spec.patch_size is not None:
            spec = dataclasses.replace(spec, image_size=plan.size, patch_size=plan.patch,
                                       num_tokens=(plan.size // plan.patch) ** 2)  # fmt: skip
        elif spec.kind == "image" and spec.box_labels is None:
            spec = dataclasses.replace(spec, image_size=plan.size, num_tokens=plan.num_tokens)
        spec.validate()
        specs.append(spec)
    return ModalityRegistry(specs)


def sized_tokenizer_config(data: dict, plan: SizePlan) -> dict:
    """An image tokenizer config mapping (``configs/tokenizers/<m>.yaml``) fitted to ``plan``: its
    image side, downsampling (the token grid) and conv levels, and its training batch."""
    data = dict(data)
    data.update(image_size=plan.size, downsample=plan.downsample, channel_mult=list(plan.channel_mult))
    data["train"] = {**(data.get("train") or {}), "batch_size": plan.tokenizer_batch}
    return data


def _caption_stats(tokenizer, captions: list[str]) -> dict[str, float]:
    """Mean tokens per caption ([EOS] included) and the share of [UNK] tokens."""
    import torch

    if not captions:
        raise FourmError("the val split holds no caption to measure the text vocabularies on")
    ids, lengths = tokenizer.encode_modality("caption", captions, max_length=4096, truncation=True, strict=False)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    unknown = int(((ids == tokenizer.unk_id) & mask).sum())
    return {
        "vocab_size": tokenizer.vocab_size,
        "tokens_per_caption": float(lengths.float().mean()),
        "unknown_fraction": unknown / max(1, int(lengths.sum())),
    }

