"""``python -m fourm.model``: parameter counts of the presets (tiny, small, base, large).

    python -m fourm.model                       # every preset over the default modality registry
    python -m fourm.model --preset small --summary

Modalities come from ``configs/modalities/`` (vocabularies as declared there), so the embedding and
head counts are those of a model trained on the default registry.
"""

from __future__ import annotations

import argparse

from fourm.cli import friendly_errors
from fourm.modalities import ModalityRegistry, default_registry
from fourm.model import FourM, FourMConfig
from fourm.model.config import PRESETS


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fourm.model", description="FourM preset parameter counts")
    parser.add_argument("--preset", nargs="*", default=None, help="presets to count (default: all)")
    parser.add_argument("--registry", default=None, help="modality YAML directory (default configs/modalities)")
    parser.add_argument("--summary", action="store_true", help="print each model's full summary")
    args = parser.parse_args(argv)

    import torch

    registry = ModalityRegistry.from_dir(args.registry) if args.registry else default_registry()
    print(f"{'preset':<8}{'dim':>6}{'blocks':>8}{'heads':>7}{'trunk':>12}{'embed+heads':>14}{'total':>12}")
    for name in args.preset or list(PRESETS):
        config = FourMConfig.from_registry(registry, preset=name)
        with torch.device("meta"):  # counts only: no memory for the weights
            model = FourM(config)
        n = model.num_parameters(breakdown=True)
        print(
            f"{name:<8}{config.dim:>6}{config.enc_depth:>4}+{config.dec_depth:<3}{config.num_heads:>7}"
            f"{n['trunk'] / 1e6:>11.1f}M{(n['embeddings'] + n['heads']) / 1e6:>13.1f}M{n['total'] / 1e6:>11.1f}M"
        )
        if args.summary:
            print(model.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
