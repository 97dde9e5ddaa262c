"""Untrusted files never run as code: no pickle, safe YAML, weights-only torch loads, TorchScript from the zoo only.

Archive extraction (traversal, links, bombs) is covered by tests/test_assets_extract.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("core", "backends", "datasets", "benchmarks")

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
UNSAFE_CALLS = {
    "eval",
    "exec",
    "compile",
    "yaml.unsafe_load",
    "yaml.full_load",
    "yaml.unsafe_load_all",
    "yaml.full_load_all",
    "torch.jit.load",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}
# Each exception is a (file, call) pair with the reason it is safe.
ALLOWED = {
    # TorchScript files are code; this is the one place they load, from a model-zoo entry's model_path only
    # (README, "Security"). The zoo is the user's own choice of files, like a Python module on sys.path.
    ("core/model/source.py", "torch.jit.load"),
}
# The one module that may import pickle: CIFAR-100's python version is only published as a pickle, so
# datasets/safe_pickle.py reads it through a pickle.Unpickler subclass whose find_class admits
# numpy-array globals only (tests/test_cifar_loader.py checks the refusal). Even there, the module-level
# pickle.load/loads (which admit any global) stay forbidden.
PICKLE_READER = "datasets/safe_pickle.py"
UNRESTRICTED_PICKLE_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler"}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def problems_in(path: Path, rel: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    # Local classes deriving from a safe loader (e.g. core/config.py's alias-bounded loader) are safe too.
    safe_loaders = set(SAFE_YAML_LOADERS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(dotted(b).split(".")[-1] in SAFE_YAML_LOADERS for b in node.bases):
            safe_loaders.add(node.name)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} imports {a.name}"
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES and not (rel == PICKLE_READER and a.name == "pickle")
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in UNSAFE_CALLS and (rel, name) not in ALLOWED:
                found.append(f"{where} calls {name}")
            if name in UNRESTRICTED_PICKLE_CALLS:
                found.append(f"{where} calls {name}")
            if is_true(keyword(node, "allow_pickle")):
                found.append(f"{where} passes allow_pickle=True")
            if is_true(keyword(node, "trust_remote_code")):
                found.append(f"{where} passes trust_remote_code=True")
            if name == "torch.load" and not is_true(keyword(node, "weights_only")):
                found.append(f"{where} calls torch.load without weights_only=True")
            if name in ("yaml.load", "yaml.load_all"):
                loader = keyword(node, "Loader")
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if loader is None or dotted(loader).split(".")[-1] not in safe_loaders:
                    found.append(f"{where} calls yaml.load without a SafeLoader")
    return found


def test_no_pickle_no_eval_no_unsafe_loads_in_project_sources():
    files = [p for folder in SCANNED for p in sorted((REPO / folder).rglob("*.py"))]
    assert len(files) > 20  # the scan really looked at the project
    problems = [msg for p in files for msg in problems_in(p, p.relative_to(REPO).as_posix())]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from joblib import load",
        "eval('1')",
        "import torch\ntorch.load('m.pt')",
        "import torch\ntorch.load('m.pt', weights_only=False)",
        "import yaml\nyaml.load(t, Loader=yaml.Loader)",
        "import yaml\nyaml.load(t, yaml.FullLoader)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "from transformers import AutoModel\nAutoModel.from_pretrained('x', trust_remote_code=True)",
        "import torch\ntorch.jit.load('m.pt')",
    ],
)
def test_the_scan_catches_each_unsafe_pattern(tmp_path, source):
    path = tmp_path / "bad.py"
    path.write_text(source, encoding="utf-8")
    assert problems_in(path, "bad.py")


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.loads(b'')",
        "import pickle\npickle.load(f)",
        "import pickle\npickle.Unpickler(f).load()",
        "import dill",
        "import marshal",
    ],
)
def test_the_pickle_reader_may_import_pickle_but_not_load_unrestricted(tmp_path, source):
    path = tmp_path / "safe_pickle.py"
    path.write_text(source, encoding="utf-8")
    assert problems_in(path, PICKLE_READER)
    assert problems_in(path, "datasets/open_cifar/loader.py")  # anywhere else even the import is refused


def test_the_scan_accepts_the_safe_forms(tmp_path):
    path = tmp_path / "good.py"
    path.write_text(
        "import torch, yaml, numpy as np\n"
        "torch.load('m.pt', weights_only=True)\n"
        "class Bounded(yaml.SafeLoader):\n    pass\n"
        "yaml.load(t, Loader=Bounded)\nyaml.load(t, Loader=yaml.SafeLoader)\n"
        "np.load('a.npz', allow_pickle=False)\nmodel.eval()\n",
        encoding="utf-8",
    )
    assert problems_in(path, "good.py") == []


def test_the_guide_says_what_happens_when_things_go_wrong():
    guide = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert "## What happens when" in guide
    section = guide.split("## What happens when", 1)[1].split("\n## ", 1)[0]
    for topic in ("exit code 2", "TorchScript", "SIGTERM", "incomplete", "NaN", "at once"):
        assert topic in section, topic
