"""bf16 only where the hardware runs it: detection, overrides, resolution, the autocast context."""

import pytest
import torch

from fourm.errors import FourmError
from fourm.utils import precision as P


@pytest.fixture
def cpu_bf16(monkeypatch):
    def set_to(value: str):
        monkeypatch.setenv("FOURM_CPU_BF16", value)
        P.cpu_has_bf16.cache_clear()

    yield set_to
    monkeypatch.delenv("FOURM_CPU_BF16", raising=False)
    P.cpu_has_bf16.cache_clear()


def test_detection_follows_the_cpu_flags(cpu_bf16):
    cpu_bf16("")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert P.cpu_has_bf16() == native == P.fast_bf16("cpu")


@pytest.mark.parametrize("flag, auto", [("1", "bf16"), ("0", "fp32")])
def test_auto_resolves_by_the_hardware_and_explicit_values_win(cpu_bf16, flag, auto):
    cpu_bf16(flag)
    assert P.resolve_precision("auto", "cpu") == auto
    assert P.resolve_precision("bf16", "cpu") == "bf16" and P.resolve_precision("fp32", "cpu") == "fp32"
    x = torch.randn(4, 8)
    with P.bf16_autocast("cpu"):
        y = x @ x.T
    assert y.dtype == (torch.bfloat16 if auto == "bf16" else torch.float32)
    with P.bf16_autocast("cpu", "bf16"):
        assert (x @ x.T).dtype == torch.bfloat16


def test_unknown_precision_is_refused():
    with pytest.raises(FourmError, match="precision must be one of auto, bf16, fp32"):
        P.resolve_precision("fp16", "cpu")
