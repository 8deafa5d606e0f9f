"""The FourM training loop on Hugging Face ``accelerate``: one code path for a single CPU/GPU,
multi-process DDP (gloo on CPU, NCCL on CUDA) and DeepSpeed ZeRO.

Each optimizer step runs ``grad_accum`` micro-batches (forward under bf16 autocast when
the resolved ``precision`` is bf16, loss in fp32; ``auto``: bf16 where the device runs it natively), checks the loss is finite on every process *before* its
backward, clips the global gradient norm, steps AdamW and the warm-up + cosine schedule. Every
``log_every`` steps the CSV/TensorBoard logs get the losses (overall and per modality), learning
rate, gradient norm and tokens/s; every ``eval_every`` steps the val split is scored with fixed,
deterministic masks (``masking.eval``, and each named task of ``masking.eval_tasks``, logged as
``val/<task>/loss_<modality>``); every ``checkpoint_every`` steps an atomic checkpoint is written. The final
weights are saved with ``FourM.save_pretrained`` in ``<run>/model``.

Exact resume: a checkpoint holds model, optimizer, scheduler, every process's RNG states and the
data position (epoch, samples consumed); masks depend only on ``(seed, epoch, sample index)``, so
N steps straight and N/2 + resume + N/2 give bit-identical weights (CPU, fp32).

Usage::

    result = train(load_train_config("configs/train/debug.yaml", ["optim.lr=3e-4"]), resume="auto")
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from fourm.core.batch import MultimodalBatch
from fourm.data.masking import collate
from fourm.errors import FourmError
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.config import PRESETS
from fourm.model.cpu_tuning import keep_freed_memory
from fourm.training.checkpoint import (
    CHECKPOINTS,
    CheckpointParts,
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
    resolve_resume,
    save_checkpoint,
)
from fourm.training.compiled import compiled_loss
from fourm.training.config import TrainConfig, resolve_path
from fourm.training.data import (
    EpochBatchSampler,
    ShardSampler,
    TrainingData,
    build_training_data,
    merge_modalities,
    open_sources,
    prepare_synthetic_sources,
)
from fourm.training.finetune import (
    OldParamsControl,
    check_added_in_data,
    finetune_modalities,
    load_added_modalities,
    load_finetune_model,
)
from fourm.training.logging import RunLogger
from fourm.training.optim import WarmupCosine, build_optimizer
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import flatten_mapping, read_json_object
from fourm.utils.outputs import claim_output, is_run_dir, write_marker
from fourm.utils.precision import bf16_autocast, resolve_precision

CONFIG_FILE = "config.json"
FINAL_MODEL = "model"


class TrainingDiverged(FourmError):
    """The loss or the gradient norm became NaN/inf; training stopped before updating the weights."""


@dataclass
class TrainResult:
    """Where a run ended."""

    run_dir: Path
    step: int
    final_model: Path | None  # <run>/model once the last step is done
    checkpoint: Path | None  # newest checkpoint
    train_loss: float | None = None  # mean loss of the last logging window
    val: dict[str, float] = field(default_factory=dict)  # last validation metrics
    model: FourM | None = None  # the trained model (unwrapped, on the training device)
    is_main: bool = True  # whether this process is the main one (multi-process runs)
    timed_out: bool = False  # stopped by the max_minutes wall-time cap (final model saved)
    elapsed_seconds: float = 0.0  # training wall time over all resumes


class LossStep(nn.Module):
    """Wraps FourM so that DDP / DeepSpeed see its training loss as the forward pass."""

    def __init__(self, model: FourM, loss: Callable | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss or model.loss  # e.g. model.loss under torch.compile (compile: true)

    def forward(self, batch: MultimodalBatch) -> tuple[Tensor, dict[str, float]]:
        return self.loss(batch)


# ------------------------------------------------------------------------------------------ setup
def _deepspeed_requested(cfg: TrainConfig) -> tuple[bool, dict | None]:
    """(launched under DeepSpeed by accelerate, DeepSpeed JSON to use otherwise)."""
    from_env = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    if from_env or cfg.deepspeed_config is None:
        return from_env, None
    path = resolve_path(cfg.deepspeed_config)
    if not path.is_file():
        raise FourmError(f"DeepSpeed config not found: {cfg.deepspeed_config}")

    return False, read_json_object(path, "DeepSpeed config")


def fill_deepspeed_config(ds_config: dict, cfg: TrainConfig, num_processes: int) -> None:
    """Replace ``"auto"`` entries with this run's values; FourmError where explicit ones disagree."""
    values = {
        "train_micro_batch_size_per_gpu": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "train_batch_size": cfg.batch_size * cfg.grad_accum * num_processes,
        "gradient_clipping": cfg.grad_clip if cfg.grad_clip is not None else 0.0,
    }
    for key, value in values.items():
        given = ds_config.get(key, "auto")
        if given == "auto":
            ds_config[key] = value
        elif given != value:
            raise FourmError(f"DeepSpeed config sets {key}={given} but the training config implies {value}")
    for section in ("bf16", "fp16"):  # fourm autocasts itself: DeepSpeed keeps fp32 weights
        if ds_config.get(section, {}).get("enabled") == "auto":
            ds_config[section]["enabled"] = False
    if "optimizer" in ds_config or "scheduler" in ds_config:
        raise FourmError("DeepSpeed config must not define 'optimizer' or 'scheduler' (fourm passes torch AdamW)")


def build_accelerator(cfg: TrainConfig):
    """An ``accelerate.Accelerator`` for this machine/launch (gloo process groups on CPU)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    ds_from_env, ds_json = _deepspeed_requested(cfg)
    use_deepspeed = ds_from_env or ds_json is not None
    plugin = None
    if use_deepspeed:
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise FourmError("DeepSpeed is not installed (pip install 'fourm[deepspeed]')") from None
        if ds_json is not None:
            from accelerate.utils import DeepSpeedPlugin

            plugin = DeepSpeedPlugin(hf_ds_config=ds_json)
    cpu = not torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) >= 0
    handlers = [InitProcessGroupKwargs(backend="gloo")] if cpu and distributed else []
    kwargs = dict(
        cpu=cpu and not use_deepspeed,  # accelerate only takes its DeepSpeed path with cpu=False
        mixed_precision="no",  # bf16 autocast is applied by the loop itself (same on every backend)
        gradient_accumulation_steps=cfg.grad_accum,
        deepspeed_plugin=plugin,
        kwargs_handlers=handlers,
    )
    try:
        accelerator = Accelerator(**kwargs)
    except ValueError:  # an earlier Accelerator in this process (e.g. a tokenizer run) set other options
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
        accelerator = Accelerator(**kwargs)
    if use_deepspeed:
        fill_deepspeed_config(accelerator.state.deepspeed_plugin.deepspeed_config, cfg, accelerator.num_processes)
    return accelerator


def build_model(cfg: TrainConfig, modalities: dict[str, ModalityConfig] | None) -> FourM:
    """A new FourM (preset or YAML + overrides, for ``modalities``) or the model of ``init_from``
    (with ``add_modalities`` appended)."""
    return _build_model(cfg, modalities)[0]


def _build_model(
    cfg: TrainConfig, modalities: dict[str, ModalityConfig] | None, data_tokens: dict | None = None
) -> tuple[FourM, dict[str, int]]:
    """:func:`build_model` and the added rows ({parameter: old rows}, see ``finetune.expand_model``);
    ``data_tokens``: the data's {name: ModalityTokens}, which re-initialised image modalities fit."""
    section = cfg.model
    if section.init_from is not None:
        if section.overrides:
            raise FourmError("model.overrides cannot change a model loaded with model.init_from")
        return load_finetune_model(
            section.init_from, section.add_modalities, seed=cfg.seed, reinit=section.reinit_modalities,
            patch_stem=section.patch_stem, grow=section.grow_decoder, row_maps=section.row_maps, data=data_tokens,
        )
    if "modalities" in section.overrides:
        raise FourmError("model.overrides.modalities is not allowed (modalities come from the data)")
    source: str | Path = section.preset
    if section.preset not in PRESETS:
        source = resolve_path(section.preset)
        if not source.is_file():
            raise FourmError(
                f"unknown model preset '{section.preset}' (known: {', '.join(PRESETS)}, or a YAML file)"
            )
    config = FourMConfig.load(source, modalities)
    if section.overrides:
        try:
            config = config.replace(**section.overrides)
        except FourmError as e:
            raise FourmError(f"model.overrides: {e}") from None
    return FourM(config), {}


def _seed_everything(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed)


# ------------------------------------------------------------------------------------------ helpers
class _Window:
    """Running sums of one logging window (losses per micro-batch, tokens, time)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.micro = 0.0, 0
        self.mod_sum = np.zeros(len(self.names))
        self.mod_count = np.zeros(len(self.names))
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, loss: float, per_modality: dict[str, float], tokens: int) -> None:
        self.loss_sum += loss
        self.micro += 1
        for name, value in per_modality.items():
            i = self.names.index(name)
            self.mod_sum[i] += value
            self.mod_count[i] += 1
        self.tokens += tokens

    def packed(self, device: torch.device) -> Tensor:
        """Everything as one float64 tensor, for a single all-reduce."""
        values = [self.loss_sum, self.micro, self.tokens, *self.mod_sum, *self.mod_count]
        return torch.tensor(values, dtype=torch.float64, device=device)


def _batch_stream(
    loader: DataLoader, sampler: EpochBatchSampler, epoch: int, start_batch: int
) -> Iterator[tuple[int, int, MultimodalBatch]]:
    """(epoch, batch index within it, batch) forever, from the given position on."""
    dataset = loader.dataset
    while True:
        sampler.set_position(epoch, start_batch)
        dataset.set_epoch(epoch)
        for k, batch in enumerate(loader, start=start_batch):
            yield epoch, k, batch
        epoch, start_batch = epoch + 1, 0


@torch.no_grad()
def evaluate(
    model: FourM, loader: DataLoader, device: torch.device, precision: str, max_batches: int | None, reduce
) -> dict[str, float]:
    """Token-mean cross-entropy per target modality on ``loader``, summed over processes with
    ``reduce``; ``val_loss`` is their mean (as the training loss)."""
    names = model.modality_names
    sums = torch.zeros(len(names), dtype=torch.float64, device=device)
    counts = torch.zeros(len(names), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    autocast = bf16_autocast(device, precision)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        batch = batch.to(device)
        with autocast:
            logits = model(batch)
        for name, rows in logits.items():
            m = names.index(name)
            target = batch.dec_target[(batch.dec_modality == m) & batch.dec_valid]  # row-major, as the logits
            sums[m] += F.cross_entropy(rows.float(), target, reduction="sum").double()
            counts[m] += target.numel()
    model.train(was_training)
    sums, counts = reduce(sums), reduce(counts)
    out = {f"val_loss_{n}": float(sums[i] / counts[i]) for i, n in enumerate(names) if counts[i] > 0}
    if out:
        out["val_loss"] = float(np.mean(list(out.values())))
    return out


def _val_loaders(data, cfg: TrainConfig, rank: int, world: int) -> dict[str | None, DataLoader]:
    """Validation loaders of this process: ``None`` -> ``masking.eval``, then one per validation task
    (tasks' workers are not kept between evaluations)."""
    datasets = {None: data.val, **data.val_tasks} if data.val is not None else {}
    workers = cfg.num_workers
    return {
        name: DataLoader(
            dataset,
            batch_sampler=ShardSampler(len(dataset), cfg.batch_size, rank, world),
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0 and name is None,
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        for name, dataset in datasets.items()
    }


def evaluate_tasks(
    model: FourM, loaders: dict[str | None, DataLoader], device: torch.device, precision: str, max_batches: int | None, reduce
) -> dict[str, float]:
    """:func:`evaluate` on every loader: ``None`` (``masking.eval``) gives ``val_loss`` and
    ``val_loss_<modality>``, a named task ``val/<task>/loss`` and ``val/<task>/loss_<modality>``."""
    metrics: dict[str, float] = {}
    for name, loader in loaders.items():
        scores = evaluate(model, loader, device, precision, max_batches, reduce)
        if name is None:
            metrics.update(scores)
        else:
            metrics.update({f"val/{name}/{key.removeprefix('val_')}": v for key, v in scores.items()})
    return metrics


def _check_finite(value: float, what: str, step: int, accelerator, checkpoint: Path | None) -> None:
    """Stop every process (one all-reduce) if ``value`` is NaN/inf on any of them."""
    bad = not math.isfinite(value)
    if accelerator.num_processes > 1:
        flag = torch.tensor([float(bad)], device=accelerator.device)
        bad = bool(accelerator.reduce(flag, reduction="sum").item() > 0)
    if bad:
        where = f"last good checkpoint: {checkpoint}" if checkpoint is not None else "no checkpoint saved yet"
        shown = value if not math.isfinite(value) else "non-finite on another process"
        raise TrainingDiverged(
            f"training diverged: {what} is {shown} at step {step}; stopped before updating the weights ({where})"
        )


# ------------------------------------------------------------------------------------------ train
COMMAND = "train.py"
# config fields a resume may change: how the run is logged, checked and saved, not what it computes
RESUME_MAY_CHANGE = frozenset(
    {"log_every", "eval_every", "eval_batches", "checkpoint_every", "keep_checkpoints", "output_dir",
     "num_workers", "tensorboard", "deepspeed_config", "max_minutes", "compile"}
)  # fmt: skip
# max_minutes may change on resume (a new total budget, e.g. to train longer); a resume that does not
# give it keeps the run's own (see inherit_max_minutes)


def inherit_max_minutes(run_dir: Path, config: TrainConfig) -> float | None:
    """The ``max_minutes`` of the run's ``config.json`` when ``config`` sets none (a resume without
    ``--max-minutes`` keeps the run's time budget); sets it on ``config``; -> the saved value."""
    try:
        saved = json.loads((run_dir / CONFIG_FILE).read_text()).get("max_minutes")
    except (OSError, ValueError, AttributeError):
        return None
    if config.max_minutes is None and isinstance(saved, (int, float)) and not isinstance(saved, bool) and saved > 0:
        config.max_minutes = float(saved)
    return saved if isinstance(saved, (int, float)) else None


def check_resume_config(run_dir: Path, config: TrainConfig) -> None:
    """FourmError naming the settings in which ``config`` differs from the run's ``config.json``
    (other than :data:`RESUME_MAY_CHANGE`): a resume with them would no longer be the run it describes."""
    saved_file = run_dir / CONFIG_FILE
    if not saved_file.is_file():
        return
    try:
        saved = flatten_mapping(json.loads(saved_file.read_text()))
    except (OSError, ValueError):
        return  # unreadable: rewritten below from the config of this resume
    now = flatten_mapping(json.loads(json.dumps(config.to_dict())))
    # a field the run's config.json lacks was added to fourm after it started: it ran with the default
    defaults = flatten_mapping(json.loads(json.dumps(TrainConfig().to_dict())))
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    changed = [
        f"{key} ({saved.get(key)!r} -> {now.get(key)!r})"
        for key in sorted(set(saved) | set(now))
        if key not in RESUME_MAY_CHANGE and saved.get(key, None) != now.get(key, None)
    ]
    if changed:
        raise FourmError(
            f"cannot resume {run_dir} with other settings than it was started with: {', '.join(changed)}; "
            "drop these overrides, or start a new run with another --out"
        )


def model_loads(path: Path, model: nn.Module) -> bool:
    """Whether ``path`` holds a complete saved copy of ``model`` (config.json, and weights whose names
    and shapes match)."""
    from safetensors import safe_open

    try:
        json.loads((path / "config.json").read_text())
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception:  # missing, truncated or foreign files
        return False
    return found == expected


def _save_final_model(model: FourM, path: Path) -> None:
    """``model.save_pretrained`` into a temporary directory renamed onto ``path``: a kill mid-way never
    leaves a half-written ``model/``."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)


def _train_inputs(cfg: TrainConfig) -> list[tuple[str, str | None]]:
    inputs: list[tuple[str, str | None]] = [
        (f"data.datasets[{i}].path", str(resolve_path(s.path))) for i, s in enumerate(cfg.data.datasets)
    ]
    inputs.append(("--init-from", cfg.model.init_from))
    inputs += [("--add-modality", path) for path in cfg.model.add_modalities]
    return inputs


def train(
    config: TrainConfig, resume: str | None = None, stop_at: int | None = None, overwrite: bool = False
) -> TrainResult:
    """Run (or resume) training as ``config`` says; see the module docstring.

    ``resume``: None (fresh run; FourmError if the run directory already has checkpoints),
    ``"auto"`` (the run's latest checkpoint if any) or a checkpoint / run directory. A resume whose
    config differs from the run's ``config.json`` (beyond :data:`RESUME_MAY_CHANGE`) is refused.
    ``stop_at``: stop after this many steps (saving a checkpoint) instead of ``config.steps``.
    The run directory is claimed first (:func:`fourm.utils.outputs.claim_output`): never an input or
    inside one, refused if non-empty and not a train.py run (unless ``overwrite``), and locked.
    """
    cfg = config
    if stop_at is not None and not 1 <= stop_at:
        raise FourmError(f"stop_at must be >= 1, got {stop_at}")
    accelerator = build_accelerator(cfg)
    with contextlib.ExitStack() as claim:
        if accelerator.is_main_process:
            claim.enter_context(claim_output(cfg.run_dir, COMMAND, _train_inputs(cfg), overwrite, is_run_dir))
        return _train(cfg, accelerator, resume, stop_at)


def _train(cfg: TrainConfig, accelerator, resume: str | None, stop_at: int | None) -> TrainResult:
    """The run in its phases: run directory and resume point, model/optimizer/data, the restored
    state and the data position, then the step loop (:class:`_Loop`)."""
    checkpoint, saved_minutes = _prepare_run_dir(cfg, accelerator, resume)
    parts = _build_components(cfg, accelerator)
    state = TrainerState(num_processes=accelerator.num_processes, global_batch=cfg.batch_size * accelerator.num_processes)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, parts.checkpoint, accelerator.process_index)
    loop = _Loop(cfg, accelerator, parts, state, checkpoint, stop_at)
    loop.announce(checkpoint, saved_minutes)
    return loop.run()


def _prepare_run_dir(cfg: TrainConfig, accelerator, resume: str | None) -> tuple[Path | None, float | None]:
    """(checkpoint to resume from or None, the run's saved max_minutes); creates the run directory,
    its marker and config.json (main process), refusing a resume whose config changed."""
    run_dir = cfg.run_dir
    checkpoint = resolve_resume(resume, run_dir)
    latest = latest_checkpoint(run_dir / CHECKPOINTS)
    if resume is None and latest is not None:
        raise FourmError(
            f"{run_dir} already holds checkpoints (latest: {latest.name}); "
            "pass --resume auto to continue it or --out for a new run"
        )
    saved_minutes = None
    if checkpoint is not None:
        saved_minutes = inherit_max_minutes(run_dir, cfg)
        check_resume_config(run_dir, cfg)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_marker(run_dir, COMMAND)  # a killed run is still recognised as train.py's
        prepare_synthetic_sources(cfg.data, cfg.seed)
        cfg.save_json(run_dir / CONFIG_FILE)
    accelerator.wait_for_everyone()
    if accelerator.device.type == "cpu":
        keep_freed_memory()
    return checkpoint, saved_minutes


@dataclass
class _Components:
    """What a run trains with: data, model (and its DDP/DeepSpeed wrapper), optimizer, schedule and
    how a checkpoint saves / loads them."""

    data: TrainingData
    model: FourM
    new_rows: dict[str, int]
    control: OldParamsControl | None
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosine
    wrapper: nn.Module
    checkpoint: CheckpointParts
    use_deepspeed: bool


def _build_components(cfg: TrainConfig, accelerator) -> _Components:
    """Data, model, optimizer and schedule, the same initialisation on every process; afterwards the
    RNG is seeded per process (dropout etc. differ across processes)."""
    use_deepspeed = accelerator.state.deepspeed_plugin is not None
    if cfg.compile and use_deepspeed:  # refused before the data and model are built
        raise FourmError("compile: true is not supported under DeepSpeed (set DeepSpeed's own 'compile' section instead)")
    device = accelerator.device
    _seed_everything(cfg.seed)
    init_modalities = data_tokens = None
    if cfg.model.init_from is not None:
        if cfg.model.reinit_modalities:  # a re-initialised image modality takes the data's tokens
            data_tokens = merge_modalities([info for _, info in open_sources(cfg.data)], cfg.data.modalities)[0]
        init_modalities = finetune_modalities(
            cfg.model.init_from, cfg.model.add_modalities, cfg.model.reinit_modalities, data_tokens
        )
        check_added_in_data(cfg.data, list(load_added_modalities(cfg.model.add_modalities)))
    data = build_training_data(cfg, init_modalities)
    model, new_rows = _build_model(cfg, data.modalities, data_tokens)
    control = None
    if cfg.model.freeze_trunk_steps or cfg.model.old_params_lr_scale != 1:
        if use_deepspeed:
            raise FourmError("model.freeze_trunk_steps / old_params_lr_scale are not supported under DeepSpeed")
        control = OldParamsControl(model, new_rows, cfg.model.freeze_trunk_steps, cfg.model.old_params_lr_scale)
    optimizer = build_optimizer(model, cfg.optim, fused=not use_deepspeed and device.type in ("cpu", "cuda"))
    scheduler = WarmupCosine(optimizer, cfg.optim, cfg.steps)
    loss = compiled_loss(model.loss, device) if cfg.compile else None
    wrapper, optimizer = accelerator.prepare(LossStep(model, loss), optimizer)
    _seed_everything(cfg.seed + accelerator.process_index)
    parts = _checkpoint_parts(model, optimizer, scheduler, wrapper, use_deepspeed)
    return _Components(data, model, new_rows, control, optimizer, scheduler, wrapper, parts, use_deepspeed)


def _checkpoint_parts(model: FourM, optimizer, scheduler, wrapper, use_deepspeed: bool) -> CheckpointParts:
    """How checkpoints save and load this run's state (DeepSpeed: through its engine)."""
    parts = CheckpointParts(
        save_model=lambda path: model.save_pretrained(path),
        optimizer=None if use_deepspeed else optimizer,
        scheduler=scheduler,
        load_model=None if use_deepspeed else (lambda path: load_model_weights(model, path)),
    )
    if use_deepspeed:
        parts.engine_save = lambda path: wrapper.save_checkpoint(str(path), tag="state", save_latest=False)

        def engine_load(path: Path) -> None:
            loaded, _ = wrapper.load_checkpoint(str(path), tag="state", load_lr_scheduler_states=False)
            if loaded is None:
                raise FourmError(f"corrupt checkpoint {path.parent}: DeepSpeed could not load {path}")

        parts.engine_load = engine_load
    return parts


class _Loop:
    """The step loop of one run: optimizer steps over the data stream from the restored position,
    logging, evaluation, checkpoints, the wall-time cap and the final model."""

    def __init__(self, cfg: TrainConfig, accelerator, parts: _Components, state: TrainerState,
                 checkpoint: Path | None, stop_at: int | None) -> None:  # fmt: skip
        self.cfg, self.accelerator, self.parts, self.state = cfg, accelerator, parts, state
        self.device, self.rank, self.world = accelerator.device, accelerator.process_index, accelerator.num_processes
        self.is_main = accelerator.is_main_process
        self.names = parts.model.modality_names
        self.global_batch = cfg.batch_size * self.world
        self.start_step = state.step
        self.sampler = EpochBatchSampler(len(parts.data.train), cfg.batch_size, cfg.seed, self.rank, self.world)
        start_batch, self.leftover = divmod(state.samples_in_epoch, self.global_batch)
        start_batch = min(start_batch, self.sampler.batches_per_epoch)
        workers = cfg.num_workers
        self.loader = DataLoader(
            parts.data.train,
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global torch RNG untouched
        )
        self.val_loaders = _val_loaders(parts.data, cfg, self.rank, self.world)
        self.end_step = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        self.logger = RunLogger(
            cfg.run_dir, self.names, cfg.steps, state.step, enabled=self.is_main, tensorboard=cfg.tensorboard,
            val_tasks=list(parts.data.val_tasks),
        )  # fmt: skip
        self.reduce = (lambda t: accelerator.reduce(t, reduction="sum")) if self.world > 1 else (lambda t: t)
        self.autocast = bf16_autocast(self.device, cfg.precision)
        self.last_ckpt = checkpoint
        self.window = _Window(self.names)
        self.result = TrainResult(run_dir=cfg.run_dir, step=state.step, final_model=None, checkpoint=checkpoint,
                                  is_main=self.is_main)  # fmt: skip
        self.last_eval_step = self.last_ckpt_step = -1
        self.stream = _batch_stream(self.loader, self.sampler, state.epoch, start_batch)
        self.max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        self.budget = cfg.max_minutes * 60.0 if cfg.max_minutes is not None else None
        self.elapsed_before, self.loop_start = state.elapsed_seconds, time.monotonic()
        self.timed_out = False

    # ---- messages, time ---------------------------------------------------------------------------
    def announce(self, checkpoint: Path | None, saved_minutes: float | None) -> None:
        """The run's opening lines: data notes, fine-tuning, resume point, size and speed settings."""
        cfg, state, logger = self.cfg, self.state, self.logger
        for note in self.parts.data.notes:
            logger.message(note)
        if self.parts.new_rows and self.is_main:
            n_added = len(cfg.model.add_modalities)
            changes = [f"added modalities {', '.join(self.names[len(self.names) - n_added :])}"] if n_added else []
            if cfg.model.reinit_modalities:
                mapped = f" (rows of {', '.join(cfg.model.row_maps)} from their code maps)" if cfg.model.row_maps else ""
                changes.append("re-initialised " + ", ".join(cfg.model.reinit_modalities) + mapped)
            if cfg.model.patch_stem:
                changes.append(f"a new {cfg.model.patch_stem} patch stem")
            added = ", ".join(changes)
            stages = f"old weights frozen for {cfg.model.freeze_trunk_steps} steps, " if cfg.model.freeze_trunk_steps else ""
            logger.message(
                f"fine-tuning {cfg.model.init_from} with {added}: "
                f"{stages}then old-weight updates x{cfg.model.old_params_lr_scale}"
            )
        if checkpoint is not None:
            logger.message(
                f"resumed from {checkpoint} (step {state.step}, epoch {state.epoch}, "
                f"{state.elapsed_seconds / 60:.1f} min trained)"
            )
            if cfg.max_minutes != saved_minutes:
                logger.message(f"note: max_minutes changed from {saved_minutes} to {cfg.max_minutes}: the time budget and "
                               "the learning-rate schedule follow the new value")  # fmt: skip
            if self.leftover:
                logger.message(f"note: batch layout changed since the checkpoint; {self.leftover} samples of epoch {state.epoch} skipped")
        if self.is_main:
            n_params = self.parts.model.num_parameters()
            logger.message(
                f"{n_params / 1e6:.2f}M parameters, modalities {', '.join(self.names)}; {self.world} process(es) on "
                f"{self.device} ({resolve_precision(cfg.precision, self.device)}), "
                f"{cfg.batch_size * cfg.grad_accum * self.world} samples/step, {len(self.parts.data.train)} train samples/epoch"
            )

    def elapsed(self) -> float:
        """Training wall time over all resumes; under a cap the same value on every process."""
        value = self.elapsed_before + time.monotonic() - self.loop_start
        if self.budget is not None and self.world > 1:  # every process must stop at the same step
            value = float(self.reduce(torch.tensor([value], dtype=torch.float64, device=self.device)).item()) / self.world
        return value

    def out_of_time(self) -> bool:
        """Under max_minutes: advance the schedule's time fraction; True (with a message) once spent."""
        if self.budget is None:
            return False
        state = self.state
        state.elapsed_seconds = self.elapsed()
        self.parts.scheduler.time_fraction = state.elapsed_seconds / self.budget
        if state.elapsed_seconds < self.budget:
            return False
        self.timed_out = True
        self.logger.message(
            f"time limit reached: {state.elapsed_seconds / 60:.2f} of {self.cfg.max_minutes:g} minutes, "
            f"stopping at step {state.step} of {self.cfg.steps}"
        )
        return True

    # ---- one optimizer step ------------------------------------------------------------------------
    def step(self) -> tuple[float, float | None]:
        """``grad_accum`` micro-batches and one optimizer step; returns (lr used, grad norm)."""
        cfg, parts, state, accelerator = self.cfg, self.parts, self.state, self.accelerator
        grad_norm = None
        lr = parts.optimizer.param_groups[0]["lr"]
        for _ in range(cfg.grad_accum):
            epoch, index, batch = next(self.stream)
            tokens = batch.num_tokens()
            batch = batch.to(self.device)
            with accelerator.accumulate(parts.wrapper):
                with self.autocast:
                    loss, per_modality = parts.wrapper(batch)
                loss_value = float(loss.detach())
                _check_finite(loss_value, "the loss", state.step + 1, accelerator, self.last_ckpt)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    grad_norm = self._apply_gradients(grad_norm)
            self.window.add(loss_value, per_modality, tokens)
            state.epoch, state.samples_in_epoch = epoch, (index + 1) * self.global_batch
            state.samples_seen += self.global_batch
        state.step += 1
        self.logger.advance()
        return lr, grad_norm

    def _apply_gradients(self, grad_norm: float | None) -> float | None:
        """Clip, check and apply the accumulated gradients (with the fine-tuning controls)."""
        parts, step = self.parts, self.state.step
        if parts.control is not None:
            parts.control.before_step(step)
        norm = self.accelerator.clip_grad_norm_(parts.wrapper.parameters(), self.max_norm)
        if norm is not None:
            grad_norm = float(norm)
            if not parts.use_deepspeed:
                _check_finite(grad_norm, "the gradient norm", step + 1, self.accelerator, self.last_ckpt)
        parts.optimizer.step()
        if parts.control is not None:
            parts.control.after_step(step)
        parts.scheduler.step()
        parts.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    # ---- logging, evaluation, checkpoints ----------------------------------------------------------
    def log(self, lr: float, grad_norm: float | None) -> None:
        """One CSV/TensorBoard row of the window's losses (summed over processes)."""
        names, state = self.names, self.state
        totals = self.reduce(self.window.packed(self.device)).cpu().numpy()
        loss_sum, micro, tokens = totals[:3]
        mod_sum, mod_count = totals[3 : 3 + len(names)], totals[3 + len(names) :]
        state.tokens_seen += int(tokens)
        seconds = max(time.perf_counter() - self.window.start, 1e-9)
        values = {"epoch": state.epoch, "loss": loss_sum / max(micro, 1), "lr": lr, "grad_norm": grad_norm}
        values.update({f"loss_{n}": mod_sum[i] / mod_count[i] for i, n in enumerate(names) if mod_count[i]})
        values.update({"tokens_per_s": tokens / seconds, "samples_seen": state.samples_seen})
        self.logger.log_train(state.step, values)
        self.result.train_loss = float(values["loss"])
        self.window.reset()

    def evaluate(self) -> None:
        if not self.val_loaders:
            return
        metrics = evaluate_tasks(self.parts.model, self.val_loaders, self.device, self.cfg.precision,
                                 self.cfg.eval_batches, self.reduce)  # fmt: skip
        self.logger.log_val(self.state.step, metrics)
        self.result.val = metrics
        self.last_eval_step = self.state.step

    def checkpoint(self) -> None:
        from accelerate.utils import broadcast_object_list

        world = self.world

        def broadcast(obj):
            return broadcast_object_list([obj])[0] if world > 1 else obj

        self.state.elapsed_seconds = self.elapsed()
        self.last_ckpt = save_checkpoint(
            self.cfg.run_dir / CHECKPOINTS, self.state, self.parts.checkpoint, self.cfg.keep_checkpoints, self.rank,
            self.is_main, broadcast, self.accelerator.wait_for_everyone,
        )  # fmt: skip
        self.last_ckpt_step = self.state.step

    # ---- the run ------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, state = self.cfg, self.state
        self.parts.wrapper.train()
        try:
            while state.step < self.end_step and not self.out_of_time():
                lr, grad_norm = self.step()
                if state.step % cfg.log_every == 0 or state.step == self.end_step:
                    self.log(lr, grad_norm)
                if cfg.eval_every and state.step % cfg.eval_every == 0:
                    self.evaluate()
                if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                    self.checkpoint()
            self.finish()
        finally:
            self.logger.close()
            self.stream.close()
            self.loader = self.val_loaders = None  # drops the persistent workers
        result = self.result
        result.step, result.checkpoint, result.model = state.step, self.last_ckpt, self.parts.model
        result.timed_out = self.timed_out
        result.elapsed_seconds = self.elapsed_before + time.monotonic() - self.loop_start
        return result

    def finish(self) -> None:
        """Final evaluation and checkpoint of a run that trained; the final model once it is done
        (re-saved when this run trained, or when model/ does not load, e.g. killed while saving it)."""
        state, model_dir = self.state, self.cfg.run_dir / FINAL_MODEL
        trained = state.step > self.start_step
        finished = state.step >= self.cfg.steps or self.timed_out
        if trained and finished and self.last_eval_step != state.step:
            self.evaluate()
        if trained and self.last_ckpt_step != state.step:
            self.checkpoint()
        if finished:
            if self.is_main and (trained or not model_loads(model_dir, self.parts.model)):
                _save_final_model(self.parts.model, model_dir)
            self.accelerator.wait_for_everyone()
            self.result.final_model = model_dir
