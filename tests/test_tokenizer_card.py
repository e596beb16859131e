"""The shipped tokenizer on the test card (scripts/tokenizer_card.py, docs/tokenizer-card.md), torch-free.

Regression floors, 0.5 dB below what the shipped model measured: they catch a broken,
swapped or worse model (or runtime), not noise — the card is deterministic. They are not
issue 28's targets (every flat colour >= 30 dB, bars >= 22 / 25 dB, gradients >= 30 dB, moving
checkerboard >= 20 dB), which the shipped model does not meet; docs/tokenizer-card.md says why.
"""
import numpy as np
import pytest

from magvit_onnx import Generator, patterns
from magvit_onnx.metrics import psnr

FLOORS_DB = {  # the decoder fine-tuned with `graphics` (0.3.0's decoder: white 15.5, magenta 8.7, bars 10.7 dB)
    "flat white": 20.3, "flat black": 21.0, "flat grey25": 28.9, "flat grey50": 30.5, "flat grey75": 30.0,
    "flat red": 16.0, "flat green": 21.8, "flat blue": 22.2, "flat cyan": 20.0, "flat magenta": 16.9,
    "flat yellow": 22.5, "colour bars 8 px": 11.6, "colour bars 16 px": 15.2, "gradient black-white": 23.0,
    "gradient red-blue diagonal": 19.4, "checkerboard 8 px": 11.6, "checkerboard 8 px moving 1 px/frame": 10.4,
    "checkerboard 4 px": 6.3, "text 2x": 6.1,
}


@pytest.fixture(scope="module")
def card_psnr() -> dict[str, float]:
    g = Generator()
    card = patterns.card(g.video_shape[0], g.video_shape[1:])
    clips = np.stack(list(card.values()))
    out = np.concatenate([g.decode(g.encode(clips[i:i + 4])) for i in range(0, len(clips), 4)])
    return dict(zip(card, psnr(clips, out).tolist()))


def test_card_covers_the_patterns_of_issue_28(card_psnr):
    assert set(card_psnr) == set(FLOORS_DB)
    assert sum(name.startswith("flat ") for name in card_psnr) == 11  # 6 colours, white, black, 3 greys


@pytest.mark.parametrize("name", sorted(FLOORS_DB))
def test_shipped_tokenizer_holds_its_floor(card_psnr, name):
    assert card_psnr[name] >= FLOORS_DB[name], f"{name}: {card_psnr[name]:.2f} dB < floor {FLOORS_DB[name]}"


def test_patterns_are_what_they_say():
    card = patterns.card()
    assert (card["flat magenta"] == (255, 0, 255)).all()
    bars = card["colour bars 8 px"][0, 0]
    assert (bars[:8] == (255, 255, 255)).all() and (bars[8:16] == (255, 255, 0)).all()
    moving = card["checkerboard 8 px moving 1 px/frame"]
    assert np.array_equal(moving[1], np.roll(moving[0], 1, axis=1))
    assert 0 < (card["text 2x"] == 0).mean() < 0.6  # ink on paper
    clip = patterns.graphics(3)
    assert clip.shape == (16, 64, 64, 3) and clip.dtype == np.uint8
    assert np.array_equal(clip, patterns.graphics(3)) and not np.array_equal(clip, patterns.graphics(4))


def test_gradient_noise_scale_recovers_a_known_value():
    """diagnose_tokenizer's batch measurement on a model whose answer is known in closed form.

    The "reconstruction" is a free tensor w, clips x_i are iid N(mu, sigma^2) per element
    (D elements): g_i = 2 (w - x_i) / D, so |G|^2 = 4 |w - mu|^2 / D^2, tr(Sigma) = 4 sigma^2 / D
    and B_simple = D sigma^2 / |w - mu|^2.
    """
    import importlib.util
    from pathlib import Path

    import torch

    path = Path(__file__).resolve().parents[1] / "scripts" / "diagnose_tokenizer.py"
    spec = importlib.util.spec_from_file_location("diagnose_tokenizer", path)
    diagnose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagnose)

    class Free(torch.nn.Module):
        def __init__(self, shape, w):
            super().__init__()
            self.encoder = torch.nn.ParameterList()
            self.decoder = torch.nn.ParameterList([torch.nn.Parameter(torch.full(shape, w))])

        def forward(self, clip):
            return self.decoder[0].expand_as(clip), {}, None

    torch.manual_seed(0)
    shape, mu, sigma = (1, 2, 4, 4, 3), 0.5, 0.2  # D = 96; |w - mu|^2 = 96 * 0.01; B_simple = 4
    clips = mu + sigma * torch.randn(400, *shape[1:])
    result = diagnose.gradient_noise_scale(Free(shape, 0.6), clips)
    low, high = result["b_simple_interval"]
    assert low < 4.0 < high and abs(result["b_simple"] - 4.0) < 0.5
    assert result["trace_covariance"] == pytest.approx(4 * sigma ** 2 / 96, rel=0.05)
    at_optimum = diagnose.gradient_noise_scale(Free(shape, mu), clips)  # |G|^2 = 0: B_simple unbounded above
    assert at_optimum["b_simple_interval"][1] is None and at_optimum["b_simple_interval"][0] > 40
