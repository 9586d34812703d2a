"""GPT-NeoX (Pythia) transformer blocks with the parameter names of Hugging Face's GPTNeoXModel.

Numerics follow transformers' GPTNeoX: fused query_key_value laid out per head as [q|k|v] (view to
(B,S,heads,3*head) then chunk), partial rotary on the first `rotary_pct` of each head with the
rotate_half convention, parallel residual, exact GELU, LayerNorm eps 1e-5, final_layer_norm.

Attention is an explicit masked softmax (the numerics of transformers' eager path), so results never
depend on which SDPA kernel libtorch picks on a given machine. Only the compiled package swaps `attend`
for libtorch's fused kernel, and only for sequences of more than 128 keys
(dove.aoti_export.CompiledAttention). `key_len` can pad the key axis with masked zero keys (results
unchanged; tested against transformers with and without it).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


class NeoXAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, rotary_pct: float, rotary_base: float):
        super().__init__()
        self.heads = heads
        self.head_size = hidden // heads
        self.rotary_ndims = int(self.head_size * rotary_pct)
        self.scaling = float(self.head_size) ** -0.5
        self.query_key_value = nn.Linear(hidden, 3 * hidden)
        self.dense = nn.Linear(hidden, hidden)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: Optional[torch.Tensor],
        key_len: int,
    ) -> torch.Tensor:
        b, s, d = x.shape[0], x.shape[1], x.shape[2]
        qkv = self.query_key_value(x).view(b, s, self.heads, 3 * self.head_size).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        r = self.rotary_ndims
        if r > 0:
            q_rot, q_pass = q[..., :r], q[..., r:]
            k_rot, k_pass = k[..., :r], k[..., r:]
            q = torch.cat([q_rot * cos + rotate_half(q_rot) * sin, q_pass], dim=-1)
            k = torch.cat([k_rot * cos + rotate_half(k_rot) * sin, k_pass], dim=-1)
        if key_len > s:
            # Zero keys/values past the sequence: masked out below, they only fix the reduction length.
            k = F.pad(k, [0, 0, 0, key_len - s])
            v = F.pad(v, [0, 0, 0, key_len - s])
        out = self.attend(q.contiguous(), k.contiguous(), v.contiguous(), mask)
        out = out.transpose(1, 2).contiguous().view(b, s, d)
        return self.dense(out)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """(B,heads,S,head) queries against (B,heads,key_len,head) keys and values; mask True = may attend."""
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        if mask is not None:
            scores = scores.masked_fill(mask.logical_not(), float("-inf"))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        return torch.matmul(probs, v)


class NeoXMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(hidden, intermediate)
        self.dense_4h_to_h = nn.Linear(intermediate, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(x)))


class NeoXLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, rotary_pct: float, rotary_base: float,
                 eps: float, parallel_residual: bool):
        super().__init__()
        self.use_parallel_residual = parallel_residual
        self.input_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.post_attention_layernorm = nn.LayerNorm(hidden, eps=eps)
        self.attention = NeoXAttention(hidden, heads, rotary_pct, rotary_base)
        self.mlp = NeoXMLP(hidden, intermediate)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Optional[torch.Tensor],
                key_len: int) -> torch.Tensor:
        attn = self.attention(self.input_layernorm(x), cos, sin, mask, key_len)
        if self.use_parallel_residual:
            mlp = self.mlp(self.post_attention_layernorm(x))
            return mlp + attn + x
        attn = attn + x
        return self.mlp(self.post_attention_layernorm(attn)) + attn


class NeoXStack(nn.Module):
    """`layers.*` + `final_layer_norm` of GPTNeoXModel (no embedding: DOVE feeds embeddings directly)."""

    def __init__(self, hidden: int, heads: int, intermediate: int, num_layers: int, rotary_pct: float = 0.25,
                 rotary_base: float = 10000.0, eps: float = 1e-5, parallel_residual: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(
            [NeoXLayer(hidden, heads, intermediate, rotary_pct, rotary_base, eps, parallel_residual)
             for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(hidden, eps=eps)
        head_size = hidden // heads
        dim = int(head_size * rotary_pct)
        # Same formula as transformers' default RoPE init; not persistent, like HF's buffer.
        inv_freq = 1.0 / (float(rotary_base) ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """positions (S,) or (B,S) -> cos, sin of shape (S,r) or (B,1,S,r) (broadcast over heads)."""
        freqs = positions.to(torch.float32)[..., None] * self.inv_freq.to(device=positions.device, dtype=torch.float32)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
        if positions.dim() == 2:
            cos, sin = cos[:, None, :, :], sin[:, None, :, :]
        return cos, sin

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], key_len: int,
                positions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B,S,d). mask: bool broadcastable to (B,1,S,key_len), True = may attend; None = full attention
        over the S real keys (key_len must then equal S). key_len >= S. positions: rotary positions,
        (S,) or (B,S); default 0..S-1 as in transformers."""
        x = x.contiguous()
        if positions is None:
            positions = torch.arange(x.shape[1], device=x.device)
        cos, sin = self.rotary(positions, x.dtype)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, key_len)
        return self.final_layer_norm(x)


def causal_mask(seq_len: int, key_len: int, key_valid: Optional[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(B or 1, 1, seq_len, key_len) bool: query i sees key j iff j <= i (and key_valid[b, j] when given)."""
    rows = torch.arange(seq_len, device=device)[:, None]
    cols = torch.arange(key_len, device=device)[None, :]
    m = (cols <= rows)[None, None, :, :]
    if key_valid is not None:
        kv = key_valid
        if kv.shape[1] < key_len:
            kv = F.pad(kv, [0, key_len - kv.shape[1]], value=False)
        m = m & kv[:, None, None, :]
    return m
