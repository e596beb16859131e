"""The README and docs/ hold together: the test command is CI's, links resolve, the code cites
only sections that exist, the version follows the changelog, and the plots read the bench JSON."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CHANGELOG.md"]
sys.path.insert(0, str(ROOT / "scripts"))
import plot_docs  # noqa: E402


def ci_commands() -> list[str]:
    """The commands `.ci/run` executes (comments, `set` and `cd` lines left out)."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines
            if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))]


def test_readme_test_command_is_what_ci_runs():
    """The README's first code block (the two commands) holds exactly .ci/run's command."""
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in first_block.splitlines() if line.strip() and not line.startswith("#")]
    assert ci_commands() == ["bash scripts/test.sh"]
    assert ci_commands()[0] in commands


def test_the_readme_demo_output_is_ignored_by_git():
    """`magvit-onnx demo --out demo/` from the README left demo/ as untracked files in the clone."""
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    out = re.search(r"magvit-onnx demo --out (\S+)", first_block).group(1)
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = subprocess.run(["git", "check-ignore", "-q", f"{out.rstrip('/')}/contact_sheet.png"], cwd=ROOT)
    assert check.returncode == 0, f"add /{out.strip('/')}/ to .gitignore"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_pictures_resolve(page):
    """Every relative link or picture of the README and docs names a file (and heading) that exists."""
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: link to missing heading {target}"


def test_code_cites_only_existing_sections_of_the_official_behaviour():
    """Every section of docs/official-behaviour.md that a file cites (`...md#anchor`, and a bare `#anchor`
    after it on the line) is a heading there; no file cites the spec the repository does not hold."""
    known = anchors(ROOT / "docs" / "official-behaviour.md")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    cited = 0
    for name in files:
        if not name.endswith((".py", ".sh", ".md", ".toml", ".yaml")):
            continue
        text = (ROOT / name).read_text()
        # The pattern is written so that it does not match its own source line.
        assert not re.search(r"spec \xa7|magvit[-]spec|shared[/]docs", text), f"{name} cites a document it lacks"
        for line in text.splitlines():
            if "official-behaviour.md#" in line:
                for anchor in re.findall(r"#([a-z][a-z-]*)", line.split("official-behaviour.md", 1)[1]):
                    assert anchor in known, f"{name}: no section #{anchor} in docs/official-behaviour.md"
                    cited += 1
    assert cited > 20


def test_version_follows_the_changelog():
    import magvit_onnx

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    newest = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert version == newest == magvit_onnx.__version__


def test_shipped_manifest_names_the_package_version():
    """`magvit-onnx info` said 0.2.0 for the 0.3.0 model: the manifest was exported before the bump."""
    import magvit_onnx
    from magvit_onnx.paths import DEFAULT_ARTIFACTS

    manifest = json.loads((DEFAULT_ARTIFACTS / "manifest.json").read_text())
    assert manifest["versions"]["magvit-onnx"] == magvit_onnx.__version__


def test_plot_series_come_from_the_bench_json():
    """The tiny table's medians (docs/benchmarks.md) are what the plot reads."""
    bench = json.loads((ROOT / "scripts" / "bench_cpu.json").read_text())
    tiny = plot_docs.bench_series(bench)["tiny"]
    assert round(tiny["generation"]["frame_prediction"]["ort"]) == 1529
    assert round(tiny["graphs"]["transformer_step"]["ort_int8"]) == 84
    assert list(tiny["graphs"]["vq_decoder"]) == list(plot_docs.BACKENDS)


def test_training_series_and_running_mean():
    lines = [json.dumps({"step": s, "loss": float(s), **({"val_loss": 0.5} if s % 2 == 0 else {})})
             for s in range(1, 5)] + [""]
    series = plot_docs.training_series(lines, ("loss", "val_loss", "val_psnr"))
    assert list(series) == ["loss", "val_loss"]
    np.testing.assert_array_equal(series["val_loss"][0], [2, 4])
    np.testing.assert_allclose(plot_docs.running_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1, 2, 4, 6])
