"""Transformer (docs/official-behaviour.md#transformer), token loss and optimiser
(#commit-training): checkable facts 7, 10-16, 21-22 (docs/official-behaviour.md#checkable-facts)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from magvit_onnx.models.config import TransformerConfig, get_config
from magvit_onnx.models.token_loss import token_loss, transformer_optimizer, warmup_cosine
from magvit_onnx.models.transformer import (
    LN_EPS,
    SelfAttention,
    SharedDropout,
    Transformer,
    count_parameters,
    expected_parameter_count,
)
from magvit_onnx.runtime.vocab import SpecialTokens

K = 1024


def small_config(**transformer):
    """'tiny' (1024 latent tokens, V = 1051, seq_len 1026) with a 2-layer, 64-wide BERT."""
    t = dict(num_layers=2, hidden_size=64, num_heads=2, mlp_dim=128)
    t.update(transformer)
    return dataclasses.replace(get_config("tiny"), transformer=TransformerConfig(**t))


def small_model(seed: int = 0, **transformer) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(small_config(**transformer))


def random_ids(config, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A multi-task sequence: task token, class token, latent ids with some MASKs."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randint(0, K, (batch, config.vq.num_tokens), generator=g)
    latent[torch.rand(latent.shape, generator=g) < 0.5] = int(SpecialTokens.MASK)
    prefix = torch.tensor([int(SpecialTokens.TASK_FULL_GENERATION), config.vocab.class_id(3)]).expand(batch, 2)
    return torch.cat([prefix, latent], dim=1)


# ---------------------------------------------------------------- shapes, tying, ids


def test_output_shapes_and_token_logits_slice():
    model = small_model().eval()
    cfg = model.config
    ids = random_ids(cfg)
    logits = model(ids)
    assert logits.shape == (2, cfg.seq_len, cfg.vocab.size)
    tok = model.token_logits(ids)
    assert tok.shape == (2, cfg.vq.num_tokens, K)
    torch.testing.assert_close(tok, logits[:, -cfg.vq.num_tokens :, :K], rtol=1e-5, atol=1e-5)
    # Segment ids are accepted and ignored (no segment table).
    torch.testing.assert_close(model(ids, segment_ids=torch.ones_like(ids)), logits)
    assert model.embeddings.position.weight.shape == (cfg.seq_len, cfg.transformer.hidden_size)


def test_output_matrix_is_tied_to_word_embedding():
    model = small_model().eval()
    cfg = model.config
    word = model.embeddings.word.weight
    v, h = cfg.vocab.size, cfg.transformer.hidden_size
    # Exactly one (V, H) tensor in the model, no copy in the head; mlm_bias has V entries.
    vh = [p for p in model.parameters() if p.shape == (v, h)]
    assert len(vh) == 1 and vh[0] is word
    assert not any(p.shape == (v, h) for p in model.head.parameters())
    assert model.head.mlm_bias.shape == (v,)
    # The head multiplies by that very Parameter (same storage), in both entry points.
    ptrs = []
    model.head.register_forward_pre_hook(lambda mod, args: ptrs.append(args[1].data_ptr()))
    ids = random_ids(cfg)
    model(ids)
    model.token_logits(ids)
    assert ptrs == [word.data_ptr()] * 2
    # Gradient through the head reaches rows no input id uses (e.g. a never-used special row).
    row = v - 16  # id -16: never fed
    assert not (torch.remainder(ids, v) == row).any()
    model(ids).sum().backward()
    assert word.grad[row].abs().sum() > 0


@pytest.mark.parametrize("token", [SpecialTokens.MASK, SpecialTokens.TASK_FRAME_PREDICTION, SpecialTokens.PAD])
def test_negative_ids_wrap_to_last_rows(token):
    model = small_model().eval()
    v = model.config.vocab.size
    k = -int(token)
    neg = torch.tensor([[int(token)] * 4])
    pos = torch.tensor([[v - k] * 4])
    torch.testing.assert_close(model.embeddings(neg), model.embeddings(pos), rtol=0, atol=0)
    assert model.config.vocab.row(int(token)) == v - k


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    "name, official_total, per_layer",
    [("B", 87_301_991, 7_087_872), ("L", 305_567_847, 12_596_224)],
)
def test_parameter_counts(name, official_total, per_layer):
    cfg = get_config(name)
    t = cfg.transformer
    with torch.device("meta"):  # L is 1.2 GB in float32: count without allocating
        model = Transformer(cfg)
    ours = expected_parameter_count(t.num_layers, t.hidden_size, t.mlp_dim, cfg.vocab.size, cfg.seq_len)
    assert count_parameters(model) == ours["total"]
    assert count_parameters(model.layers[0]) == ours["per_layer"] == per_layer
    assert count_parameters(model.embeddings) == ours["embeddings"]
    assert count_parameters(model.head) == ours["head"]  # dense + LN + mlm_bias (E is tied, not counted)
    # The official UCF class-conditional layout (V = 1127, seq 1025) gives the spec totals exactly.
    official = expected_parameter_count(t.num_layers, t.hidden_size, t.mlp_dim, 1127, 1025)
    assert official["total"] == official_total
    assert abs(ours["total"] - official_total) / official_total < 0.005


def test_parameter_count_formula_on_a_real_cpu_model():
    model = small_model()
    cfg, t = model.config, model.config.transformer
    ours = expected_parameter_count(t.num_layers, t.hidden_size, t.mlp_dim, cfg.vocab.size, cfg.seq_len)
    assert count_parameters(model) == ours["total"]


# ---------------------------------------------------------------- layers and init


def test_layernorm_eps_and_tanh_gelu():
    model = small_model()
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 1 + 2 * 2 + 1  # embeddings, 2 per layer, head
    assert all(m.eps == LN_EPS == 1e-12 for m in norms)
    gelus = [m for m in model.modules() if isinstance(m, nn.GELU)]
    assert len(gelus) == 2 + 1 and all(m.approximate == "tanh" for m in gelus)


def test_init():
    model = small_model()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert m.weight.abs().max() <= 0.04 + 1e-7  # truncated at 2 units before x0.02
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.count_nonzero(m.bias) == 0
    w = model.embeddings.word.weight
    assert w.abs().max() <= 0.04 + 1e-7
    # Not re-normalised: std of N(0,1) truncated to [-2, 2] is 0.8796, times 0.02.
    assert abs(w.std().item() - 0.8796 * 0.02) < 5e-4
    assert torch.count_nonzero(model.head.mlm_bias) == 0


def test_eval_deterministic_train_stochastic():
    model = small_model()
    ids = random_ids(model.config)
    model.eval()
    with torch.no_grad():
        a, b = model(ids), model(ids)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        c, d = model(ids), model(ids)
    assert not torch.allclose(c, d)
    assert not torch.allclose(a, c)


def test_attention_dropout_mask_shared_across_batch_and_heads():
    torch.manual_seed(0)
    drop = SharedDropout(0.5).train()
    x = torch.rand(3, 4, 5, 5) + 0.5
    y = drop(x)
    keep = y / x * 0.5  # 0 or 1
    assert torch.all((keep == 0) | (keep - 1).abs().lt(1e-6))
    assert 0 < keep.mean() < 1
    assert torch.all(keep == keep[:1, :1])  # one [1, 1, Lq, Lk] mask for everything
    torch.testing.assert_close(drop.eval()(x), x, rtol=0, atol=0)

    # Inside SelfAttention: the probs go through that module, and identical batch items give
    # identical outputs in training (per-example masks would make them differ).
    torch.manual_seed(0)
    attn = SelfAttention(16, 4, attention_dropout=0.5).train()
    shapes = []
    attn.attn_dropout.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape)))
    x = torch.randn(1, 6, 16).expand(3, 6, 16)
    out = attn(x)
    assert shapes == [(3, 4, 6, 6)]
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)
    torch.testing.assert_close(out[0], out[2], rtol=0, atol=0)
    assert not torch.allclose(out, attn.eval()(x))


def test_guided_logits():
    model = small_model().eval()
    cfg = model.config
    ids = random_ids(cfg, seed=1)
    uncond = ids.clone()
    uncond[:, 1] = cfg.vocab.uncond_id
    with torch.no_grad():
        lc, lu = model.token_logits(ids), model.token_logits(uncond)
        calls = []
        handle = model.embeddings.register_forward_hook(lambda *a: calls.append(1))
        g0 = model.guided_logits(ids, uncond, 0.0)
        assert len(calls) == 1  # s = 0 skips the unconditional pass
        handle.remove()
        torch.testing.assert_close(g0, lc, rtol=0, atol=0)
        g = model.guided_logits(ids, uncond, 1.5)
    torch.testing.assert_close(g, lc + 1.5 * (lc - lu))


# ---------------------------------------------------------------- loss


def reference_loss(logits, targets, weights, eps=1e-4, k=K):
    """Literal docs/official-behaviour.md#commit-training with an explicit one-hot
    (official: labels == arange(K))."""
    onehot = (targets[..., None] == torch.arange(k)).double()
    soft = onehot * (1 - eps + eps / k) + (1 - onehot) * (eps / k)
    ce = -(soft * torch.log_softmax(logits[..., :k].double(), -1)).sum(-1)
    per = (ce * weights).sum(-1) / (weights.sum(-1) + 1e-8)
    return per.mean(), per


def test_label_smoothing_values():
    # One position, two logits made so log_softmax is known: the CE equals -(on*lp0 + off*sum rest).
    eps, k = 1e-4, K
    on, off = 1 - eps + eps / k, eps / k
    assert on == pytest.approx(1 - 1e-4 + 1e-4 / 1024, abs=0) and off == pytest.approx(1e-4 / 1024, abs=0)
    logits = torch.zeros(1, 1, k)
    logits[0, 0, 7] = 5.0
    lp = torch.log_softmax(logits.double(), -1)[0, 0]
    expected = -(on * lp[7] + off * (lp.sum() - lp[7]))
    loss, per = token_loss(logits, torch.tensor([[7]]), torch.ones(1, 1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # Uniform logits: CE = log K whatever the smoothing (targets sum to 1).
    loss, _ = token_loss(torch.zeros(1, 1, k), torch.tensor([[3]]), torch.ones(1, 1))
    assert loss.item() == pytest.approx(math.log(k), rel=1e-6)


def test_loss_matches_hand_computation_and_uses_codebook_columns_only():
    torch.manual_seed(0)
    b, length, v = 3, 7, 1051
    logits = torch.randn(b, length, v) * 3
    targets = torch.randint(0, K, (b, length))
    weights = torch.rand(b, length)
    loss, per = token_loss(logits, targets, weights)
    ref_loss, ref_per = reference_loss(logits, targets, weights)
    torch.testing.assert_close(per.double(), ref_per, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=1e-6)
    # Columns >= K (class / special ids) are never looked at.
    logits2 = logits.clone()
    logits2[..., K:] = 1e4
    torch.testing.assert_close(token_loss(logits2, targets, weights)[0], loss)


def test_prefix_positions_out_of_range_and_weight_normalisation():
    torch.manual_seed(1)
    b, n = 2, 6
    latent_logits = torch.randn(b, n, K)
    latent_targets = torch.randint(0, K, (b, n))
    latent_weights = torch.ones(b, n)
    # Prefix: task token (-3) and class token (1024 + 3): out of the one-hot range, weight 0.
    logits = torch.cat([torch.randn(b, 2, K) * 10, latent_logits], 1)
    targets = torch.cat([torch.tensor([[-3, 1027]] * b), latent_targets], 1)
    weights = torch.cat([torch.zeros(b, 2), latent_weights], 1)
    loss, per = token_loss(logits, targets, weights)
    loss_latent, per_latent = token_loss(latent_logits, latent_targets, latent_weights)
    torch.testing.assert_close(per, per_latent)
    assert torch.isfinite(loss)
    # Out-of-range rows are all `off` (official one-hot), even when weighted.
    torch.testing.assert_close(
        token_loss(logits, targets, torch.ones(b, n + 2))[1].double(),
        reference_loss(logits, targets, torch.ones(b, n + 2))[1],
        rtol=1e-5, atol=1e-6,
    )
    # per-example = weighted mean: scale-invariant in the weights, mean over the batch.
    torch.testing.assert_close(token_loss(logits, targets, weights * 5)[1], per, rtol=1e-5, atol=1e-6)
    assert loss.item() == pytest.approx(per.mean().item())
    w = torch.zeros(b, n + 2)
    w[0, 4] = 1.0
    ce_single = token_loss(logits[:1, 4:5], targets[:1, 4:5], torch.ones(1, 1))[0]
    assert token_loss(logits, targets, w)[1][0].item() == pytest.approx(ce_single.item(), rel=1e-6)
    assert token_loss(logits, targets, torch.zeros(b, n + 2))[0].item() == 0.0  # no NaN


# ---------------------------------------------------------------- optimiser, schedule


def test_optimizer_decays_only_linear_weights():
    model = small_model()
    opt = transformer_optimizer(model)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.045 and no_decay["weight_decay"] == 0.0
    assert opt.defaults["betas"] == (0.9, 0.96) and opt.defaults["eps"] == 1e-8 and opt.defaults["lr"] == 1e-4
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    assert {id(p) for p in decay["params"]} == linear_weights
    assert len(linear_weights) == 2 * 6 + 1  # q, k, v, out, mlp_in, mlp_out per layer + MLM dense
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert {"embeddings.word.weight", "embeddings.position.weight", "head.mlm_bias"} <= no_decay_names
    assert all(n.endswith(".bias") or "norm" in n or "embeddings." in n or n == "head.mlm_bias" for n in no_decay_names)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_cosine():
    base = 1e-4
    assert warmup_cosine(0, base, 100, 1100) == 0.0
    assert warmup_cosine(50, base, 100, 1100) == pytest.approx(base / 2)
    assert warmup_cosine(100, base, 100, 1100) == pytest.approx(base)
    assert warmup_cosine(600, base, 100, 1100) == pytest.approx(base / 2)
    assert warmup_cosine(1100, base, 100, 1100) == pytest.approx(0.0, abs=1e-20)
    assert warmup_cosine(5000, base, 100, 1100) == pytest.approx(0.0, abs=1e-20)


# ---------------------------------------------------------------- learning


def test_tiny_model_overfits_a_fixed_masked_batch():
    torch.manual_seed(0)
    model = small_model(seed=0)
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    targets_latent = torch.randint(0, K, (2, cfg.vq.num_tokens), generator=g)
    masked = torch.rand(targets_latent.shape, generator=g) < 0.5
    inputs = torch.cat(
        [torch.tensor([[int(SpecialTokens.TASK_FULL_GENERATION), cfg.vocab.class_id(1)]] * 2),
         torch.where(masked, int(SpecialTokens.MASK), targets_latent)], 1)
    targets = inputs.clone()
    targets[:, 2:] = targets_latent
    weights = torch.cat([torch.zeros(2, 2), torch.ones(2, cfg.vq.num_tokens)], 1)  # mask+refine+recons

    opt = transformer_optimizer(model, lr=3e-3)
    model.train()
    losses = []
    for _ in range(30):
        loss, _ = token_loss(model(inputs), targets, weights)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(K), abs=0.2)  # near-uniform at init
    assert losses[-1] < 0.5 * losses[0], losses  # seeds 0-2 reach ~2.1 from 6.9
