"""VQGAN encoder/decoder with the exact module layout of diffusers' `VQModel`.

Parameter names match diffusers' state dict (encoder.*, decoder.*, quant_conv.*, post_quant_conv.*), so a
diffusers checkpoint such as the aMUSEd VQ-VAE loads by name. The vector quantizer is not on DOVE's path
(DOVE uses the pre-quantisation latents), so `quantize.*` is not part of this module.
Only what VQModel uses with norm_type "group" and mid-block attention off is implemented.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn


class ResnetBlock2D(nn.Module):
    """diffusers ResnetBlock2D with temb_channels=None, pre-norm, output_scale_factor 1, SiLU."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        # diffusers only creates conv_shortcut when channels change; Identity keeps the key set identical.
        if in_channels != out_channels:
            self.conv_shortcut: nn.Module = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
        else:
            self.conv_shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.nonlinearity(self.norm1(x))
        h = self.conv1(h)
        h = self.nonlinearity(self.norm2(h))
        h = self.conv2(h)
        return self.conv_shortcut(x) + h


class Downsample2D(nn.Module):
    """diffusers Downsample2D(use_conv=True, padding=0, name="op"): asymmetric (0,1,0,1) zero pad, stride-2 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [0, 1, 0, 1], mode="constant", value=0.0)
        return self.conv(x)


class Upsample2D(nn.Module):
    """diffusers Upsample2D(use_conv=True): nearest x2 then 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


class DownEncoderBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(num_layers)]
        )
        # Empty list instead of None: same state-dict keys as diffusers, and TorchScript can iterate it.
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)] if add_downsample else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for down in self.downsamplers:
            x = down(x)
        return x


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(num_layers)]
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)] if add_upsample else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for up in self.upsamplers:
            x = up(x)
        return x


class MidBlock2D(nn.Module):
    """UNetMidBlock2D with add_attention=False: two resnets (attentions are None, so no parameters)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups), ResnetBlock2D(channels, channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x


class Encoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, block_out_channels: List[int], layers_per_block: int, groups: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, stride=1, padding=1)
        blocks = []
        output_channel = block_out_channels[0]
        for i, ch in enumerate(block_out_channels):
            input_channel = output_channel
            output_channel = ch
            is_final = i == len(block_out_channels) - 1
            blocks.append(DownEncoderBlock2D(input_channel, output_channel, layers_per_block, groups, not is_final))
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock2D(block_out_channels[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, block_out_channels[-1], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        x = self.conv_act(self.conv_norm_out(x))
        return self.conv_out(x)


class Decoder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, block_out_channels: List[int], layers_per_block: int, groups: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[-1], kernel_size=3, stride=1, padding=1)
        self.mid_block = MidBlock2D(block_out_channels[-1], groups)
        reversed_channels = list(reversed(block_out_channels))
        blocks = []
        output_channel = reversed_channels[0]
        for i, ch in enumerate(reversed_channels):
            prev_output_channel = output_channel
            output_channel = ch
            is_final = i == len(block_out_channels) - 1
            blocks.append(UpDecoderBlock2D(prev_output_channel, output_channel, layers_per_block + 1, groups, not is_final))
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(groups, block_out_channels[0], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        x = self.mid_block(x)
        for block in self.up_blocks:
            x = block(x)
        x = self.conv_act(self.conv_norm_out(x))
        return self.conv_out(x)


class VQGAN(nn.Module):
    """Encoder + quant_conv (pre-quantisation latents) and post_quant_conv + Decoder."""

    def __init__(self, cfg: dict):
        super().__init__()
        channels = [int(c) for c in cfg["block_out_channels"]]
        latent = int(cfg["latent_channels"])
        groups = int(cfg["norm_num_groups"])
        layers = int(cfg["layers_per_block"])
        self.encoder = Encoder(int(cfg.get("in_channels", 3)), latent, channels, layers, groups)
        self.quant_conv = nn.Conv2d(latent, latent, 1)
        self.post_quant_conv = nn.Conv2d(latent, latent, 1)
        self.decoder = Decoder(latent, int(cfg.get("out_channels", 3)), channels, layers, groups)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
