"""PatchGAN discriminator (pix2pix / VQGAN style): one real/fake logit per overlapping image patch."""

from __future__ import annotations

from torch import Tensor, nn

from tokenizers_zoo.image.conv import num_groups


class PatchDiscriminator(nn.Module):
    """Image (B, C, H, W) -> patch logits (B, 1, H', W'); ``num_layers`` stride-2 stages, GroupNorm."""

    def __init__(self, in_channels: int, width: int = 64, num_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = width
        for i in range(1, num_layers + 1):
            out_ch = width * min(2**i, 8)
            stride = 2 if i < num_layers else 1
            layers += [
                nn.Conv2d(ch, out_ch, 4, stride=stride, padding=1, bias=False),
                nn.GroupNorm(num_groups(out_ch), out_ch),
                nn.LeakyReLU(0.2),
            ]
            ch = out_ch
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, 1, H', W')
        return self.net(x)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.GroupNorm):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
