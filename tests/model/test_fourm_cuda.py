"""The model on CUDA (skipped without a GPU): same logits and loss as on the CPU, bf16 autocast runs."""

import pytest
import torch
from fourm_testing import toy_config, two_sample_batch

from fourm.model import FourM

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_cuda_matches_cpu():
    model = FourM(toy_config(qk_norm=True)).eval()
    batch = two_sample_batch()
    cpu_loss, cpu_per = model.loss(batch)
    gpu = model.to("cuda")
    gpu_loss, gpu_per = gpu.loss(batch.to("cuda"))
    assert abs(gpu_loss.item() - cpu_loss.item()) < 1e-3
    assert cpu_per.keys() == gpu_per.keys()
    gpu_loss.backward()
    assert all(p.grad is not None for p in gpu.parameters())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = gpu.loss(batch.to("cuda"))
    assert torch.isfinite(loss)
