"""One distribution, one import root, and no torch behind `import magvit_onnx`."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked")
sys.meta_path.insert(0, Block())
"""


def test_runtime_never_imports_torch():
    code = BLOCK_TORCH + (
        "import magvit_onnx, magvit_onnx.runtime\n"
        "from magvit_onnx.runtime import vocab, tasks, schedule, masking, commit\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_wheel_has_one_import_root(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("magvit_onnx-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"magvit_onnx"}
    for sub in ("models/vqvae.py", "runtime/masking.py", "runtime/commit.py", "export/__init__.py"):
        assert f"magvit_onnx/{sub}" in names
