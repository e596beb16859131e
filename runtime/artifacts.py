"""An artifacts folder: three ONNX graphs + `manifest.json`, verified before use.

    artifacts/
      manifest.json           format version, model config, token layout, tasks, decoding
                              defaults, graph I/O, provenance, sha256 of every file
      vq_encoder.onnx         video [B, T, H, W, 3] float32 in [0, 1] -> tokens [B, t, h, w] int64
      transformer_step.onnx   the step's transformer: masked tokens -> logits [rows, N, K] float32
      sampler_*.onnx          the step's float32 sampling, logits -> token + probability
                              (manifest 'samplers': plain, full and/or full_gpu; a few kB each)
      vq_decoder.onnx         tokens [B, t, h, w] int64 -> video [B, T, H, W, 3] float32

`load_manifest(folder)` refuses a folder whose format version is not ours, a manifest that
is damaged (a key missing or of the wrong kind), a file named outside the folder, a graph
not listed among the verified files, or any file whose sha256 differs from the manifest
(tampered or truncated), a listed file that is a symbolic link out of the folder, and a
graph that keeps tensors in an external data file (`runtime.external_data`: such a file
is not hashed, and the exporter never writes one), before a session exists: every byte a
session loads is in a regular file inside the folder, checked against its sha256. It also
refuses values no call can use (decoding defaults, per task too, outside `magvit_onnx.limits`, a task
this version does not know, fewer or more classes than the vocabulary's, a bad
`batch_profile`).
"""
from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from magvit_onnx.runtime import decoding as decoding_rules
from magvit_onnx.runtime.external_data import external_tensor

FORMAT_VERSION = 1
GRAPHS = ("vq_encoder", "transformer_step", "vq_decoder")
MAX_MANIFEST_BYTES = 16 << 20


class ArtifactError(ValueError):
    """An artifacts folder that cannot be used (missing, tampered, wrong format)."""


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: str | Path, verify: bool = True) -> dict:
    """Read `folder/manifest.json` and check its structure (`check_manifest`); with `verify`,
    also check that every file it lists is a regular file with its sha256. Any problem
    raises one ArtifactError line."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        problem = "no such folder" if not folder.exists() else "not a folder"
        raise ArtifactError(f"{folder}: {problem}; give an artifacts folder (made by `python export/export_all.py "
                            "--out DIR`), or none for the shipped default model")
    if not path.is_file():
        raise ArtifactError(f"{folder} is not an artifacts folder: {path.name} is missing "
                            "(make one with `python export/export_all.py --out DIR`)")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{path} is {path.stat().st_size} bytes; a manifest is at most "
                                f"{MAX_MANIFEST_BYTES} (re-export the artifacts)")
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); re-export the artifacts") \
            from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from None
    except (ValueError, RecursionError) as e:  # numbers of over 4300 digits, nesting too deep
        raise ArtifactError(f"{path} is not a manifest: {str(e)[:80] or type(e).__name__}") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {repr(version)[:40]} is not supported (this magvit-onnx reads "
                            f"format_version {FORMAT_VERSION}); re-export the artifacts with this version")
    check_manifest(manifest, path)
    if verify:
        for name, entry in manifest["files"].items():
            file = folder / name
            try:
                info = file.stat()
            except OSError:
                raise ArtifactError(f"{file} is missing (listed in {path.name})") from None
            if not stat.S_ISREG(info.st_mode):
                raise ArtifactError(f"{file} is not a regular file (listed in {path.name})")
            if folder.resolve() not in file.resolve().parents:
                raise ArtifactError(f"{file} is a symbolic link to {file.resolve()}, outside the artifacts folder; "
                                    f"every file of {path.name} must be inside the folder (copy it in)")
            try:
                actual = sha256(file)
            except OSError as e:
                raise ArtifactError(f"{file}: cannot read it ({e.strerror or e})") from None
            if actual != entry["sha256"]:
                raise ArtifactError(f"{file} does not match its manifest: sha256 {actual[:16]}… expected "
                                    f"{entry['sha256'][:16]}… (tampered or truncated; re-export or re-download)")
            if (tensor := external_tensor(file)) is not None:
                raise ArtifactError(f"{file} keeps tensor {tensor[:80]!r} in an external data file, which "
                                    f"{path.name} cannot verify; magvit-onnx loads self-contained graphs only "
                                    "(as export writes them): re-export the artifacts")
    return manifest


def check_manifest(manifest: dict, path: Path) -> None:
    """Raise ArtifactError naming the first key of `manifest` that is missing or of the wrong
    kind. The folder is a boundary: every file is a plain name inside it, every graph is one
    of the listed (and so verified) files, and the three graphs are listed."""
    def fail(key: str, expected: str):
        raise ArtifactError(f"{path}: {key} must be {expected}; the manifest is damaged or hand-edited "
                            "(re-export the artifacts)")

    def get(parent: dict, key: str, where: str, kind, expected: str):
        value = parent.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            fail(f"{where}{key}", expected)
        return value

    def shape(parent: dict, key: str, where: str) -> None:
        value = get(parent, key, where, list, "a list of 3 positive integers")
        if len(value) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
            fail(f"{where}{key}", "a list of 3 positive integers")

    for key in ("preset", "precision"):
        get(manifest, key, "", str, "a string")
    for key in ("weights", "versions"):
        get(manifest, key, "", dict, "an object")
    files = get(manifest, "files", "", dict, "an object of file name -> {\"sha256\": ...}")
    for name, entry in files.items():
        if not _plain_name(name):
            fail(f"files key {name[:80]!r}", "a plain file name inside the artifacts folder (no path)")
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            fail(f"files[{name!r}].sha256", "a sha256 (64 lower-case hex digits)")
    graphs = get(manifest, "graphs", "", dict, f"an object with {', '.join(GRAPHS)}")
    entries = {f"graphs.{g}": get(graphs, g, "graphs.", dict, "an object with a filename") for g in GRAPHS}
    if "samplers" in manifest:  # absent in artifacts made before the step was split in two graphs
        samplers = get(manifest, "samplers", "", dict, "an object of sampler name -> graph entry")
        if "plain" not in samplers or not {"full", "full_gpu"} & set(samplers):
            fail("samplers", "an object with 'plain' and 'full' or 'full_gpu'")
        entries.update({f"samplers.{name}": get(samplers, name, "samplers.", dict, "an object with a filename")
                        for name in samplers})
    for where, entry in entries.items():
        filename = get(entry, "filename", f"{where}.", str, "a file name")
        if filename not in files or not _plain_name(filename):
            fail(f"{where}.filename", f"one of the files listed in 'files' (got {filename[:80]!r}); "
                                      "every graph is loaded from the folder and verified")
        for i, item in enumerate(get(entry, "inputs", f"{where}.", list, "a list of inputs")):
            if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("shape"), list)
                    and all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in item["shape"])):
                fail(f"{where}.inputs[{i}]", "an object with a name and a shape (a list of sizes and axis names)")
    shape(get(manifest, "video", "", dict, "an object with a shape"), "shape", "video.")
    shape(manifest, "latent_shape", "")
    vocab = get(manifest, "vocab", "", dict, "an object")
    for key in ("codebook_size", "num_classes"):
        if get(vocab, key, "vocab.", int, "a positive integer") < 1:
            fail(f"vocab.{key}", "a positive integer")
    get(vocab, "multi_task", "vocab.", bool, "true or false")
    tasks = get(manifest, "tasks", "", dict, "an object of task name -> entry")
    for name, entry in tasks.items():
        if not isinstance(entry, dict):
            fail(f"tasks.{name}", "an object")
        for key in ("needs_video", "class_conditional"):
            get(entry, key, f"tasks.{name}.", bool, "true or false")
        get(entry, "abbreviation", f"tasks.{name}.", str, "a string")
    for i, entry in enumerate(get(manifest, "classes", "", list, "a list")):
        class_id = entry.get("id") if isinstance(entry, dict) else entry
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(class_id, bool) or not isinstance(class_id, int) or class_id < 0 \
                or not isinstance(name, (str, type(None))):
            fail(f"classes[{i}]", "a class id (an integer >= 0) or an object with an id and a name")
    decoding = get(manifest, "decoding", "", dict, "an object")
    for key, kind in (("num_iter", int), ("top_k", int), ("schedule", str), ("mask_temperature", (int, float)),
                      ("sampling_temperature", (int, float)), ("guidance_scale", (int, float)),
                      ("top_p", (int, float))):
        get(decoding, key, "decoding.", kind, "a string" if kind is str else "a number")
    _check_values(manifest, fail)


def _check_values(manifest: dict, fail) -> None:
    """Values of a manifest whose kinds are right that no call could use: they would fail
    every job with a misleading line, or silently give degenerate tokens."""
    from magvit_onnx.limits import check_decoding  # the bounds every call is held to (numpy only)
    from magvit_onnx.runtime.tasks import get_task

    vocab, decoding = manifest["vocab"], manifest["decoding"]
    try:
        check_decoding(latent_shape=manifest["latent_shape"], codebook_size=vocab["codebook_size"],
                       steps=decoding["num_iter"], schedule=decoding["schedule"],
                       sampling_temperature=decoding["sampling_temperature"],
                       mask_temperature=decoding["mask_temperature"], guidance_scale=decoding["guidance_scale"],
                       top_k=decoding["top_k"], top_p=decoding["top_p"] or None)  # top_p 0: off
    except ValueError as e:
        fail("decoding", f"defaults every call can use ({str(e).replace('steps', 'num_iter', 1)})")
    problem = decoding_rules.by_task_problem(manifest.get("decoding_by_task", {}), manifest)
    if problem:
        fail(*problem)
    for name in manifest["tasks"]:
        try:
            canonical = get_task(name).name
        except ValueError as e:
            fail(f"tasks key {name[:80]!r}", f"a task this magvit-onnx knows ({str(e).split(': ', 1)[-1]})")
        if canonical != name:
            fail(f"tasks key {name[:80]!r}", f"the task's own name, {canonical!r}")
    if len(manifest["classes"]) != vocab["num_classes"]:
        fail("classes", f"a list of vocab.num_classes ({vocab['num_classes']}) classes, got "
                        f"{len(manifest['classes'])}")
    if "batch_profile" in manifest:  # TensorRT's optimisation profile (runtime.providers.trt_profiles)
        profile = manifest["batch_profile"]
        if (not isinstance(profile, dict) or set(profile) - {"opt", "max"}
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in profile.values())
                or profile.get("opt", 1) > profile.get("max", profile.get("opt", 1))):
            fail("batch_profile", 'an object {"opt": N, "max": M} of integers with 1 <= N <= M')


def _plain_name(name: str) -> bool:
    """A file name without any path part ('a.onnx', not '../a.onnx', '/x/a.onnx' or 'sub/a.onnx')."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
