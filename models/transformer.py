"""The bidirectional MAGVIT transformer: official `simplified_bert` in PyTorch
(docs/official-behaviour.md#transformer).

A post-LN BERT over `prefix + latent` ids (no causal mask, no padding mask):

    Embeddings  word (V x H) + learned position (seq_len x H) -> LN(1e-12) -> dropout
    Layer x N   a = LN(x + Drop(Attn(x)));  y = LN(a + Drop(W2 gelu_tanh(W1 a + b1) + b2))
    MlmHead     Dense(H->H) -> gelu_tanh -> LN(1e-12) -> h @ E^T + mlm_bias  (E tied)

Shapes: B batch, L sequence length (<= seq_len), H hidden, V vocab, N latent tokens,
K codebook size. Parameter names are ours; the Flax -> PyTorch weight mapping is in
docs/official-behaviour.md#paper-versus-code (q/k/v kernels (H, heads, 64) -> (H, H) -> transpose).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from magvit_onnx.models.config import MagvitConfig

LN_EPS = 1e-12  # BERT LayerNorm epsilon (Flax default 1e-6 is NOT what the official uses)
INIT_STD = 0.02


def trunc_normal_(tensor: torch.Tensor, std: float = INIT_STD) -> torch.Tensor:
    """Flax `truncated_normal(std)`: standard normal truncated to [-2, 2], THEN times std.

    Not re-normalised, so the effective std is ~0.88*std. (torch's `trunc_normal_(std=s,
    a=-2, b=2)` would truncate at +-2 absolute, i.e. +-100 sigma: effectively untruncated.)
    """
    with torch.no_grad():
        nn.init.trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0)
        return tensor.mul_(std)


class Embeddings(nn.Module):
    """Word + absolute position embedding, LayerNorm, dropout. No segment table."""

    def __init__(self, vocab_size: int, max_len: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.word = nn.Embedding(vocab_size, hidden)
        # Covers the prefix too: rows = MagvitConfig.seq_len (1025 / 1026 officially).
        self.position = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) int64 -> (B, L, H).

        `segment_ids` is accepted for interface parity with the official model and ignored:
        the official config leaves `use_condition_segment` unset, so no segment table exists.
        """
        del segment_ids
        # Special tokens are negative; jnp.take wraps them (-k -> row V-k). nn.Embedding
        # rejects negatives, so wrap explicitly (exports as ONNX Mod; Gather would wrap too).
        rows = torch.remainder(input_ids, self.vocab_size)
        length = input_ids.shape[1]
        x = self.word(rows) + self.position.weight[:length]  # (B, L, H) + (L, H)
        return self.dropout(self.norm(x))


class SharedDropout(nn.Module):
    """Dropout whose mask is shared over the leading (batch, head) dims.

    Flax `dot_product_attention` with `broadcast_dropout=True` draws ONE keep-mask of shape
    [1, 1, Lq, Lk] for the attention probabilities of the whole batch and all heads.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, Lq, Lk) -> same; identity in eval mode."""
        if not self.training or self.p == 0.0:
            return x
        keep_prob = 1.0 - self.p
        mask_shape = (1,) * (x.dim() - 2) + tuple(x.shape[-2:])  # (1, 1, Lq, Lk)
        keep = torch.rand(mask_shape, device=x.device) < keep_prob
        return x * keep.to(x.dtype) / keep_prob


class SelfAttention(nn.Module):
    """Multi-head self-attention, no mask (full bidirectional).

    Written HF-BERT style (separate q/k/v Linear, explicit softmax(q k^T / sqrt(d)) v, not
    F.scaled_dot_product_attention) because that is the graph ONNX Runtime's transformer
    optimizer fuses into one Attention op (its no-mask pattern MatMul -> Div -> Softmax).
    Flax scales q before the product; for head_dim 64 the scale 1/8 is a power of two, so
    scaling q or the scores is bit-identical.
    """

    def __init__(self, hidden: int, num_heads: int, attention_dropout: float) -> None:
        super().__init__()
        if hidden % num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attn_dropout = SharedDropout(attention_dropout)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B, heads, L, head_dim); feature index = head * head_dim + d (Flax order)."""
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B, L, H)."""
        b, length, hidden = x.shape
        q = self._split_heads(self.query(x))
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (B, h, L, L)
        probs = self.attn_dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v)  # (B, h, L, d)
        ctx = ctx.permute(0, 2, 1, 3).reshape(b, length, hidden)
        return self.out(ctx)


class Layer(nn.Module):
    """Post-LN BERT block (original BERT ordering: residual add, then LayerNorm)."""

    def __init__(self, hidden: int, num_heads: int, mlp_dim: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.attention = SelfAttention(hidden, num_heads, attention_dropout)
        self.attention_dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.mlp_in = nn.Linear(hidden, mlp_dim)
        self.gelu = nn.GELU(approximate="tanh")  # jax.nn.gelu default is the tanh form
        self.mlp_out = nn.Linear(mlp_dim, hidden)
        self.mlp_dropout = nn.Dropout(dropout)
        self.mlp_norm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B, L, H)."""
        a = self.attention_norm(x + self.attention_dropout(self.attention(x)))
        h = self.mlp_out(self.gelu(self.mlp_in(a)))
        return self.mlp_norm(a + self.mlp_dropout(h))


class MlmHead(nn.Module):
    """Dense -> GELU(tanh) -> LN -> logits against the TIED word embedding, plus mlm_bias.

    The output matrix is not a parameter of the head: the caller passes the word
    embedding's own Parameter, so there is one tensor (one state_dict key, one ONNX
    initializer, one gradient accumulator) and no copy can drift.
    """

    def __init__(self, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.gelu = nn.GELU(approximate="tanh")
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, embedding: torch.Tensor, num_columns: int | None = None) -> torch.Tensor:
        """h (B, L, H), embedding E (V, H) -> (B, L, V), or (B, L, num_columns) for the first ids.

        Slicing E before the product equals slicing the full logits afterwards (each column
        is an independent dot product) and skips the prefix/special columns' work.
        """
        h = self.norm(self.gelu(self.dense(h)))
        bias = self.mlm_bias
        if num_columns is not None:
            embedding, bias = embedding[:num_columns], bias[:num_columns]
        return torch.matmul(h, embedding.t()) + bias


class Transformer(nn.Module):
    """MAGVIT's `simplified_bert`: ids (B, L) -> logits over the full vocabulary (B, L, V)."""

    def __init__(self, config: MagvitConfig) -> None:
        super().__init__()
        t = config.transformer
        self.config = config
        self.vocab_size = config.vocab.size
        self.codebook_size = config.vq.codebook_size
        self.num_tokens = config.vq.num_tokens
        self.embeddings = Embeddings(self.vocab_size, config.seq_len, t.hidden_size, t.dropout)
        self.layers = nn.ModuleList(
            Layer(t.hidden_size, t.num_heads, t.mlp_dim, t.dropout, t.attention_dropout)
            for _ in range(t.num_layers)
        )
        self.head = MlmHead(t.hidden_size, self.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: trunc-normal(0.02) on embeddings and all Dense kernels; zeros/ones else."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                trunc_normal_(module.weight)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.mlm_bias)

    def hidden_states(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) int64 -> (B, L, H), the encoder output before the MLM head."""
        x = self.embeddings(input_ids, segment_ids)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) int64 ids (negatives = special tokens) -> (B, L, V) logits.

        `segment_ids` is ignored (no segment embedding in the official model).
        """
        return self.head(self.hidden_states(input_ids, segment_ids), self.embeddings.word.weight)

    def token_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, N, K): logits of the last N (latent) positions over the codebook only.

        Equals forward(ids)[:, -N:, :K], what decoding and the loss consume
        (docs/official-behaviour.md#decoding);
        the head is position-wise, so the prefix positions are dropped before it.
        """
        h = self.hidden_states(input_ids)[:, -self.num_tokens :]
        return self.head(h, self.embeddings.word.weight, num_columns=self.codebook_size)

    def guided_logits(
        self, input_ids: torch.Tensor, uncond_input_ids: torch.Tensor, guidance_scale: float
    ) -> torch.Tensor:
        """Classifier-free guidance (docs/official-behaviour.md#decoding):
        l_c + s * (l_c - l_u), each (B, N, K).

        With s == 0 (the official default) the unconditional pass is skipped.
        """
        cond = self.token_logits(input_ids)
        if guidance_scale == 0:
            return cond
        uncond = self.token_logits(uncond_input_ids)
        return cond + guidance_scale * (cond - uncond)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())


def expected_parameter_count(
    num_layers: int, hidden: int, mlp_dim: int, vocab_size: int, seq_len: int
) -> dict[str, int]:
    """Closed form (docs/official-behaviour.md#transformer): per layer 4H^2 + 2HM + 9H + M;
    embeddings (V + L)H + 2H; head H^2 + 3H + V."""
    h, m = hidden, mlp_dim
    per_layer = 4 * h * h + 2 * h * m + 9 * h + m
    embeddings = (vocab_size + seq_len) * h + 2 * h
    head = h * h + 3 * h + vocab_size
    return {
        "per_layer": per_layer,
        "layers": per_layer * num_layers,
        "embeddings": embeddings,
        "head": head,
        "total": per_layer * num_layers + embeddings + head,
    }
