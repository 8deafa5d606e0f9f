"""Run by the slow multi-process tests under ``accelerate launch``: train from a config file, then
write ``<run>/rank<r>.json`` with this process's view (weights digest, step, world size).

    accelerate launch --config_file configs/accelerate/ddp_cpu.yaml tests/training/distributed_probe.py CONFIG [STOP_AT]
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from fourm.training import load_train_config, train


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    cfg = load_train_config(sys.argv[1])
    stop_at = int(sys.argv[2]) if len(sys.argv) > 2 else None
    result = train(cfg, resume="auto", stop_at=stop_at)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    info = {"rank": rank, "world": world, "step": result.step, "digest": weights_digest(result.model)}
    Path(cfg.output_dir, f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
