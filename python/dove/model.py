"""DOVE / Q-DOVE: VQGAN latents -> causal GPT-NeoX token generator -> variable-length continuous tokens
(+ EOS logits) -> bidirectional GPT-NeoX token decoder -> VQGAN decoder. Scriptable with torch.jit.script.

The methods the runtime calls (encode, select_lengths, decode, encode_pixels, decode_pixels, forward)
are documented in docs/MODEL_FORMAT.md; keep the two in step.
"""
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import autoencoder_type, latent_grid
from .neox import NeoXStack, causal_mask
from .transform_ae import BlockTransformAutoencoder
from .vqgan import VQGAN


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def eos_rule_loss(eos_logits: torch.Tensor, pred_len: torch.Tensor, use_pred: torch.Tensor, error: torch.Tensor,
                  window: int) -> torch.Tensor:
    """The EOS rule (design doc section 4) on samples trained at their predicted length (use_pred):
    error worse than the batch mean -> needs more tokens: BCE(logit at the EOS slot, 0);
    better than the mean -> needs fewer: BCE(logits at the `window` slots before the EOS slot, 1).
    Each selected sample weighs the same (mean over its own selected logits, then over samples): with a
    mean over all selected logits, the `window` up-pushes of every better sample outvote the single
    down-push of every worse one, and lengths shrink for all images until the head can tell them apart
    (measured: every image at length 1-3 after 100 steps). 0 when no sample is selected."""
    k = eos_logits.shape[1]
    e = error.detach()
    mean = e.mean()
    worse = use_pred & (e > mean)
    better = use_pred & (e < mean)
    idx = torch.arange(k, device=eos_logits.device)[None, :]
    eos_slot = (pred_len - 1)[:, None]
    down = ((idx == eos_slot) & worse[:, None]).to(eos_logits.dtype)
    up = ((idx < eos_slot) & (idx >= eos_slot - window) & better[:, None]).to(eos_logits.dtype)
    bce_down = F.binary_cross_entropy_with_logits(eos_logits, torch.zeros_like(eos_logits), reduction="none")
    bce_up = F.binary_cross_entropy_with_logits(eos_logits, torch.ones_like(eos_logits), reduction="none")
    per_sample = ((bce_down * down).sum(dim=1) + (bce_up * up).sum(dim=1)) / (down.sum(dim=1) + up.sum(dim=1)).clamp_min(1.0)
    selected = (down.sum(dim=1) + up.sum(dim=1)) > 0
    return per_sample.sum() / selected.sum().clamp_min(1).to(eos_logits.dtype)


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """float (B,3,H,W) in [0,1] -> uint8 (B,H,W,3), rounded to nearest."""
    return images.mul(255.0).round().clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class TimeEmbed(nn.Module):
    """Timestep slot embeddings: sinusoidal(i) -> Linear(d,4d) -> SiLU -> Linear(4d,d); the same for every image."""

    def __init__(self, slots: int, hidden: int):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(slots, hidden), persistent=False)
        self.linear_1 = nn.Linear(hidden, 4 * hidden)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(4 * hidden, hidden)

    def forward(self, count: int) -> torch.Tensor:
        # The MLP always runs over the whole table so slot i's embedding never depends on `count`.
        return self.linear_2(self.act(self.linear_1(self.table)))[:count]


class LatentIn(nn.Module):
    """Latent grid (B,C,g,g) -> sequence (B,N,d) + learned position embedding. Over positions (the paper):
    N = g*g raster-order positions, Linear(C->d); over channels: N = C channel maps, Linear(g*g->d)."""

    def __init__(self, channels: int, grid: int, hidden: int, over_channels: bool):
        super().__init__()
        self.over_channels = over_channels
        self.proj = nn.Linear(grid * grid if over_channels else channels, hidden)
        self.pos_embed = nn.Parameter(torch.zeros(channels if over_channels else grid * grid, hidden))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        h = latents.flatten(2)
        if not self.over_channels:
            h = h.transpose(1, 2)
        return self.proj(h.contiguous()) + self.pos_embed[None, :, :]


class TokenDecoder(NeoXStack):
    """Bidirectional GPT-NeoX stack over max_tokens slots; `token_in` maps d_tok->d, `pos_embed` is learned."""

    def __init__(self, token_dim: int, slots: int, hidden: int, heads: int, intermediate: int, num_layers: int,
                 rotary_pct: float, rotary_base: float, eps: float, parallel_residual: bool):
        super().__init__(hidden, heads, intermediate, num_layers, rotary_pct, rotary_base, eps, parallel_residual)
        self.token_in = nn.Linear(token_dim, hidden)
        self.pos_embed = nn.Parameter(torch.zeros(slots, hidden))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token_in(tokens) + self.pos_embed[None, :, :]


class Dove(nn.Module):
    def __init__(self, cfg: Dict[str, Any], variant: str = "dove"):
        super().__init__()
        if variant not in ("dove", "qdove"):
            raise ValueError(f"variant must be 'dove' or 'qdove', got {variant!r}")
        vq = cfg["vqgan"]
        tr = cfg["transformer"]
        loss = cfg["loss"]
        self.variant = variant
        self.is_qdove = variant == "qdove"
        self.image_size = int(cfg["imageSize"])
        self.max_tokens = int(cfg["maxTokens"])
        self.token_dim = int(cfg["tokenDim"])
        self.grid = latent_grid(cfg)
        self.latent_channels = int(vq["latent_channels"])
        self.hidden = int(tr["hidden_size"])
        self.eos_threshold = float(cfg["eosThreshold"])
        self.query_max_length = int(cfg["query"]["maxLength"])
        self.vocab_size = int(tr["vocab_size"])
        self.eos_weight = float(loss["eosWeight"])
        self.eos_window = int(loss["eosWindow"])
        self.predicted_length_prob = float(loss["predictedLengthProb"])
        self.length_penalty = float(loss["lengthPenalty"])
        self.irrelevant_weight = float(loss["irrelevantWeight"])
        self.autoencoder_weight = float(loss["autoencoderWeight"])
        self.latent_weight = float(loss["latentWeight"])
        self.autoencoder_stage = str(loss["stage"]) == "autoencoder"
        self.log_uniform_share = {"uniform": 0.0, "mixed": 0.5, "loguniform": 1.0}[str(loss["lengthSampling"])]

        d = self.hidden
        stack_args = (int(tr["num_attention_heads"]), int(tr["intermediate_size"]))
        rope = (float(tr["rotary_pct"]), float(tr["rotary_emb_base"]), float(tr["layer_norm_eps"]),
                bool(tr["use_parallel_residual"]))
        # Named "vqgan" whatever its type: parameter names (vqgan.*) select the VQGAN learning-rate group.
        self.vqgan: nn.Module = BlockTransformAutoencoder(vq, self.image_size) if autoencoder_type(cfg) == "blocktransform" else VQGAN(vq)
        self.over_channels = str(tr["sequence"]) == "channels"
        self.slot_skip = bool(tr["slot_skip"])
        self.latent_in = LatentIn(self.latent_channels, self.grid, d, self.over_channels)
        self.time_embed = TimeEmbed(self.max_tokens, d)
        self.generator = NeoXStack(d, stack_args[0], stack_args[1], int(tr["generator_layers"]), *rope)
        self.token_head = nn.Linear(d, self.token_dim)
        self.eos_head = nn.Linear(d, 1)
        self.token_decoder = TokenDecoder(self.token_dim, self.max_tokens, d, stack_args[0], stack_args[1],
                                          int(tr["decoder_layers"]), *rope)
        element = self.grid * self.grid if self.over_channels else self.latent_channels
        self.latent_out = nn.Linear(d, element)
        # transformer.slot_skip: linear skips around both transformers. Token k = token_head(slot k's
        # state) + token_skip(sequence element k); decoded element k = latent_out(its state) +
        # latent_skip(token k). Both start as identities and the heads at zero, so a fresh model is exactly
        # its autoencoder's latent truncated to the first L elements (with "blocktransform" over channels:
        # the DCT codec keeping the L most important coefficients of every block), and training learns
        # what the transformers add: better early tokens, and the missing elements predicted from the kept.
        self.token_skip: Optional[nn.Linear] = nn.Linear(element, self.token_dim, bias=False) if self.slot_skip else None
        self.latent_skip: Optional[nn.Linear] = nn.Linear(self.token_dim, element, bias=False) if self.slot_skip else None
        self.query_embed: Optional[nn.Embedding] = nn.Embedding(self.vocab_size, d) if self.is_qdove else None
        self.reset_transformer_parameters()

    def reset_transformer_parameters(self) -> None:
        """GPT-NeoX style init (normal 0.02) for everything outside the VQGAN; EOS starts unlikely."""
        for name, module in self.named_modules():
            if name.startswith("vqgan"):
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.latent_in.pos_embed, std=0.02)
        nn.init.normal_(self.token_decoder.pos_embed, std=0.02)
        nn.init.constant_(self.eos_head.bias, -2.0)
        if self.token_skip is not None and self.latent_skip is not None:
            nn.init.eye_(self.token_skip.weight)
            nn.init.eye_(self.latent_skip.weight)
            for head in (self.token_head, self.latent_out):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        # With std 0.02 at d=128 the generator's attention logits start with std ~0.05: every slot pools
        # the same uniform average of the image, the slots barely differ between images (token spread
        # across images 0.04 of their total spread) and training collapses them to a constant (mean
        # image, one EOS length for all). std sqrt(2/d) gives logits of std ~2, so each slot starts
        # with its own pooling of the image (spread 0.3) and the decoder has something to learn from.
        # Pretrained Pythia weights, when given, replace this.
        for layer in self.generator.layers:
            nn.init.normal_(layer.attention.query_key_value.weight, std=math.sqrt(2.0 / self.hidden))

    # ----------------------------------------------------------------------------------------- inputs
    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B,H,W,3) or float (B,3,H,W) in [0,1] -> float32 (B,3,H,W)."""
        s = self.image_size
        if images.dim() != 4:
            raise ValueError(f"Expected images of rank 4, uint8 (B,{s},{s},3) or float32 (B,3,{s},{s}), but received rank {images.dim()}")
        if images.dtype == torch.uint8:
            if images.shape[1] != s or images.shape[2] != s or images.shape[3] != 3:
                raise ValueError(f"Expected uint8 images of shape (B,{s},{s},3) but received {list(images.shape)}")
            return images.permute(0, 3, 1, 2).to(torch.float32).div(255.0).contiguous()
        if not images.is_floating_point():
            raise ValueError(f"Expected images as uint8 or float32 but received {images.dtype}")
        if images.shape[1] != 3 or images.shape[2] != s or images.shape[3] != s:
            raise ValueError(f"Expected float images of shape (B,3,{s},{s}) but received {list(images.shape)}")
        return images.to(torch.float32).contiguous()

    def _check_query(self, batch: int, query_ids: Optional[torch.Tensor],
                     query_mask: Optional[torch.Tensor]) -> None:
        if query_ids is None:
            if query_mask is not None:
                raise ValueError("query_mask was given without query_ids")
            return
        if not self.is_qdove:
            raise ValueError("query_ids were given but this model is a DOVE export, not Q-DOVE")
        if query_ids.dim() != 2 or query_ids.shape[0] != batch:
            raise ValueError(f"Expected query_ids of shape ({batch},Tq) but received {list(query_ids.shape)}")
        if query_ids.dtype != torch.int64:
            raise ValueError(f"Expected query_ids of dtype int64 but received {query_ids.dtype}")
        if query_ids.shape[1] > self.query_max_length:
            raise ValueError(f"Expected at most {self.query_max_length} query tokens but received {query_ids.shape[1]}")
        if query_ids.numel() > 0:
            if int(query_ids.min()) < 0 or int(query_ids.max()) >= self.vocab_size:
                raise ValueError(f"Expected query ids between 0 and {self.vocab_size - 1}")
        if query_mask is not None:
            if list(query_mask.shape) != list(query_ids.shape):
                raise ValueError(f"Expected query_mask of shape {list(query_ids.shape)} but received {list(query_mask.shape)}")

    # ----------------------------------------------------------------------------------------- encode
    def _generate(self, latents: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor],
                  query_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        b = latents.shape[0]
        device = latents.device
        parts: List[torch.Tensor] = [self.latent_in(latents)]
        n_vis = parts[0].shape[1]
        n_query = 0
        embed = self.query_embed
        if embed is not None:
            if query_ids is not None:
                n_query = query_ids.shape[1]
                if n_query > 0:
                    parts.append(embed(query_ids).to(parts[0].dtype))
        # Always all max_tokens slots, then keep the first K: libtorch's CPU GEMMs give row results that
        # depend on the row count for small matrices, so a K-slot forward would not be bit-identical to
        # the first K rows of a max-slot one. The VQGAN encoder dominates the cost anyway.
        t = self.time_embed(self.max_tokens).to(parts[0].dtype)
        slot_in = t[None, :, :].expand(b, self.max_tokens, t.shape[1])
        if self.slot_skip:
            slot_in = slot_in + parts[0][:, :self.max_tokens, :]
        parts.append(slot_in)
        seq = torch.cat(parts, dim=1)
        prefix = n_vis + n_query
        seq_len = seq.shape[1]
        key_valid: Optional[torch.Tensor] = None
        if query_mask is not None and n_query > 0:
            key_valid = torch.cat([
                torch.ones(b, n_vis, dtype=torch.bool, device=device),
                query_mask.to(device=device) != 0,
                torch.ones(b, self.max_tokens, dtype=torch.bool, device=device),
            ], dim=1)
        mask = causal_mask(seq_len, seq_len, key_valid, device)
        positions: Optional[torch.Tensor] = None
        if key_valid is not None:
            # Padding tokens do not advance the rotary position, so a query padded inside a batch gives
            # the same result as the same query alone.
            positions = (key_valid.to(torch.int64).cumsum(dim=1) - 1).clamp_min(0)
        h = self.generator(seq, mask, seq_len, positions)
        slots = h[:, prefix:, :].contiguous()
        tokens = self.token_head(slots)[:, :max_tokens]
        skip = self.token_skip
        if skip is not None:
            elements = latents.flatten(2)
            if not self.over_channels:
                elements = elements.transpose(1, 2)
            # All max_tokens rows through the GEMM, then the first K, for the reason above.
            tokens = tokens + skip(elements[:, :self.max_tokens].to(tokens.dtype))[:, :max_tokens]
        tokens = tokens.contiguous()
        eos_logits = self.eos_head(slots).squeeze(-1)[:, :max_tokens].contiguous()
        return tokens, eos_logits

    def _encode_with_latents(self, x: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor],
                             query_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (VQGAN latents, tokens, eos_logits); training also needs the latents."""
        if max_tokens < 1 or max_tokens > self.max_tokens:
            raise ValueError(f"Expected integer between 1 and {self.max_tokens} for max_tokens but received {max_tokens}")
        self._check_query(x.shape[0], query_ids, query_mask)
        latents = self.vqgan.encode(x)
        tokens, eos_logits = self._generate(latents, max_tokens, query_ids, query_mask)
        return latents, tokens, eos_logits

    def _encode_float(self, x: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor],
                      query_mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        _, tokens, eos_logits = self._encode_with_latents(x, max_tokens, query_ids, query_mask)
        return tokens, eos_logits

    @torch.jit.export
    def encode(self, images: torch.Tensor, max_tokens: int, query_ids: Optional[torch.Tensor] = None,
               query_mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (B,K,tokenDim), eos_logits (B,K) with K = max_tokens."""
        return self._encode_float(self.prepare_images(images), max_tokens, query_ids, query_mask)

    def _auto_lengths(self, eos_logits: torch.Tensor, threshold: float) -> torch.Tensor:
        k = eos_logits.shape[1]
        above = torch.sigmoid(eos_logits) > threshold
        first = torch.argmax(above.to(torch.int64), dim=1)
        return torch.where(above.any(dim=1), first + 1, torch.full_like(first, k))

    @torch.jit.export
    def select_lengths(self, eos_logits: torch.Tensor, mode: str, budget: int, threshold: float) -> torch.Tensor:
        """auto: 1 + first i with sigmoid(logit_i) > threshold, else K; fixed: budget; capped: min(auto, budget)."""
        if eos_logits.dim() != 2:
            raise ValueError(f"Expected eos_logits of shape (B,K) but received {list(eos_logits.shape)}")
        k = eos_logits.shape[1]
        if not (threshold > 0.0 and threshold < 1.0):
            raise ValueError(f"Expected number between 0 and 1 (exclusive) for threshold but received {threshold}")
        if mode == "auto":
            return self._auto_lengths(eos_logits, threshold)
        if budget < 1 or budget > k:
            raise ValueError(f"Expected integer between 1 and {k} for budget but received {budget}")
        if mode == "fixed":
            return torch.full([eos_logits.shape[0]], budget, dtype=torch.int64, device=eos_logits.device)
        if mode == "capped":
            return torch.clamp(self._auto_lengths(eos_logits, threshold), max=budget)
        raise ValueError(f"Expected mode 'auto', 'fixed' or 'capped' but received '{mode}'")

    @torch.jit.export
    def encode_pixels(self, images: torch.Tensor, mode: str, budget: int, threshold: float,
                      query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode with K = budget slots, then choose lengths -> (tokens, eos_probs, lengths)."""
        if mode != "auto" and mode != "fixed" and mode != "capped":
            raise ValueError(f"Expected mode 'auto', 'fixed' or 'capped' but received '{mode}'")
        tokens, eos_logits = self.encode(images, budget, query_ids, query_mask)
        lengths = self.select_lengths(eos_logits, mode, budget, threshold)
        return tokens, torch.sigmoid(eos_logits), lengths

    # ----------------------------------------------------------------------------------------- decode
    def _decode_raw(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.vqgan.decode(self._decode_latents(tokens, lengths))

    def _decode_latents(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self._check_decode_args(tokens, lengths)
        return self._latents_from_tokens(tokens, lengths)

    def _check_decode_args(self, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """The argument checks of decode, apart from its computation: they read tensor values, which a
        graph compiled with torch.export cannot, so compiled decoders run them outside the graph."""
        if tokens.dim() != 3 or tokens.shape[2] != self.token_dim:
            raise ValueError(f"Expected tokens of shape (B,K,{self.token_dim}) but received {list(tokens.shape)}")
        b, k = tokens.shape[0], tokens.shape[1]
        if k < 1 or k > self.max_tokens:
            raise ValueError(f"Expected between 1 and {self.max_tokens} token slots but received {k}")
        if lengths.dim() != 1 or lengths.shape[0] != b:
            raise ValueError(f"Expected lengths of shape ({b},) but received {list(lengths.shape)}")
        if lengths.is_floating_point():
            raise ValueError(f"Expected integer lengths but received {lengths.dtype}")
        if b > 0 and (int(lengths.min()) < 0 or int(lengths.max()) > k):
            raise ValueError(f"Expected lengths between 0 and {k} (the token slots given)")

    def _latents_from_tokens(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """decode's computation on arguments _check_decode_args accepted."""
        b, k = tokens.shape[0], tokens.shape[1]
        lengths = lengths.to(device=tokens.device, dtype=torch.int64)
        tokens = tokens.to(self.token_decoder.pos_embed.dtype)
        if k < self.max_tokens:
            tokens = F.pad(tokens, [0, 0, 0, self.max_tokens - k])
        slot = torch.arange(self.max_tokens, device=tokens.device)
        keep = (slot[None, :] < lengths[:, None])[:, :, None]
        # where, not multiply: slots >= length must not matter even when they hold NaN or inf.
        z = torch.where(keep, tokens, torch.zeros_like(tokens))
        h = self.token_decoder(self.token_decoder.embed(z), None, self.max_tokens)
        out = self.latent_out(h)
        skip = self.latent_skip
        if skip is not None:
            out = out + skip(z)
        if not self.over_channels:
            out = out.transpose(1, 2)
        return out.reshape(b, self.latent_channels, self.grid, self.grid)

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens (B,K,D), lengths (B,) -> images float32 (B,3,H,W) in [0,1]; slots >= length ignored."""
        return self._decode_raw(tokens, lengths).clamp(0.0, 1.0)

    @torch.jit.export
    def decode_pixels(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """-> uint8 (B,H,W,3)."""
        return to_pixels(self.decode(tokens, lengths))

    # ----------------------------------------------------------------------------------------- training
    def _autoencoder_losses(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """loss.stage "autoencoder": only the VQGAN, as a plain autoencoder (the from-scratch stand-in for
        the paper's pretrained VQGAN). Trained jointly from scratch, the token path's poor latents teach the
        shared VQGAN decoder to ignore its input (measured: the autoencoder term climbed back from 0.05 to
        0.08 MSE within 100 steps), so a from-scratch model first learns its VQGAN alone."""
        ae = (self.vqgan.decode(self.vqgan.encode(x)).float() - x).pow(2).mean()
        zero = torch.zeros_like(ae)
        return {"loss": ae, "rec": ae.detach(), "ae": ae.detach(), "eos": zero,
                "length": torch.full_like(ae, float(self.max_tokens))}

    def forward(self, images: torch.Tensor, region_mask: Optional[torch.Tensor] = None,
                query_ids: Optional[torch.Tensor] = None, query_mask: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        """Training losses (design doc section 4/5). Randomness uses the global generator (torch.rand)."""
        x = self.prepare_images(images)
        if self.autoencoder_stage:
            return self._autoencoder_losses(x)
        return self._dove_losses(x, region_mask, query_ids, query_mask)

    def _random_lengths(self, b: int, device: torch.device) -> torch.Tensor:
        """Training lengths for samples not trained at their EOS length (loss.lengthSampling)."""
        k = self.max_tokens
        lengths = torch.randint(1, k + 1, [b], device=device)
        if self.log_uniform_share > 0.0:
            # P(L) ~ 1/L: short prefixes, where each token carries the most, get more practice.
            log_len = torch.exp(torch.rand([b], device=device) * math.log(k + 1.0)).floor().to(torch.int64).clamp(1, k)
            lengths = torch.where(torch.rand([b], device=device) < self.log_uniform_share, log_len, lengths)
        return lengths

    def _dove_losses(self, x: torch.Tensor, region_mask: Optional[torch.Tensor], query_ids: Optional[torch.Tensor],
                     query_mask: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        b = x.shape[0]
        k = self.max_tokens
        device = x.device
        latents, tokens, eos_logits = self._encode_with_latents(x, k, query_ids, query_mask)
        with torch.no_grad():
            pred_len = self._auto_lengths(eos_logits.detach().float(), self.eos_threshold)
        use_pred = torch.rand([b], device=device) < self.predicted_length_prob
        rand_len = self._random_lengths(b, device)
        train_len = torch.where(use_pred, pred_len, rand_len)
        decoded_latents = self._decode_latents(tokens, train_len)
        recon = self.vqgan.decode(decoded_latents).float()
        err = (recon - x).pow(2)
        rec_per = err.mean(dim=[1, 2, 3])
        rec = rec_per.mean()
        out: Dict[str, torch.Tensor] = {}
        split = region_mask is not None or self.is_qdove
        rel = rec
        irr = torch.zeros_like(rec)
        drive = rec_per
        if region_mask is not None:
            m = region_mask
            if m.dim() == 3:
                m = m[:, None, :, :]
            if m.dim() != 4 or m.shape[0] != b or m.shape[1] != 1 or m.shape[2] != x.shape[2] or m.shape[3] != x.shape[3]:
                raise ValueError(f"Expected region_mask of shape ({b},1,{self.image_size},{self.image_size}) but received {list(region_mask.shape)}")
            m = m.to(device=device, dtype=err.dtype)
            inside = m.expand_as(err)
            outside = 1.0 - inside
            rel_per = (err * inside).sum(dim=[1, 2, 3]) / inside.sum(dim=[1, 2, 3]).clamp_min(1.0)
            irr_per = (err * outside).sum(dim=[1, 2, 3]) / outside.sum(dim=[1, 2, 3]).clamp_min(1.0)
            rel = rel_per.mean()
            irr = irr_per.mean()
            drive = rel_per
            main = rel + self.irrelevant_weight * irr
        else:
            main = rec

        eos = eos_rule_loss(eos_logits.float(), pred_len, use_pred, drive, self.eos_window)
        logits = eos_logits.float()
        loss = main + self.eos_weight * eos
        if self.length_penalty > 0.0:
            # Differentiable expected length under the EOS probabilities: sum_i P(not stopped before i).
            p = torch.sigmoid(logits)
            survive = torch.cumprod(1.0 - p, dim=1)
            expected = 1.0 + survive[:, :-1].sum(dim=1)
            loss = loss + self.length_penalty * expected.mean() / k
        if self.autoencoder_weight > 0.0:
            # From-scratch models (no pretrained VQGAN): the VQGAN also learns as a plain autoencoder, so its
            # decoder gets a clean target while the token path is still poor.
            ae = (self.vqgan.decode(latents).float() - x).pow(2).mean()
            loss = loss + self.autoencoder_weight * ae
            out["ae"] = ae.detach()
        if self.latent_weight > 0.0:
            # The token path also regresses the (detached) VQGAN latents, scale-free: a direct signal
            # that does not have to pass through the VQGAN decoder first.
            target = latents.detach().float()
            lat = (decoded_latents.float() - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-6)
            loss = loss + self.latent_weight * lat
            out["latent"] = lat.detach()
        out["loss"] = loss
        out["rec"] = rec.detach()
        out["eos"] = eos.detach()
        out["length"] = pred_len.to(torch.float32).mean()
        if split:
            out["rel"] = rel.detach()
            out["irr"] = irr.detach()
        return out
