"""``python -m fourm.model`` prints preset parameter counts that match the built model."""

from fourm.modalities import default_registry
from fourm.model import FourM, FourMConfig
from fourm.model.__main__ import main


def test_counts_match_a_built_model(capsys):
    assert main(["--preset", "tiny"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny")][0]
    expected = FourM(FourMConfig.from_registry(default_registry(), preset="tiny")).num_parameters()
    assert row.split()[-1] == f"{expected / 1e6:.1f}M"


def test_unknown_preset_is_a_one_line_error(capsys):
    assert main(["--preset", "huge"]) == 2
    assert "unknown model preset 'huge'" in capsys.readouterr().err
