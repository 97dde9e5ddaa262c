"""Which weights a run uses: the model-zoo file, a local/cached Hugging Face checkpoint, or synthetic.

Synthetic weights are the exact architecture from a bundled config with seeded random values:
the compute is faithful, the answers are not.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.common.digest import file_sha256
from core.common.errors import UserError
from core.common.paths import REPO_ROOT
from core.config.schema import ModelEntry
from core.model.builder import CallingConvention, library_of

log = logging.getLogger(__name__)

# ByteMLPerf's TensorFlow formats: folders we cannot run, only convert.
TF_FORMATS = ("saved_model", "savedmodel", "pb", "tf")


def resolve_repo_path(value: str) -> Path:
    """A path from a config file: absolute, or relative to the repo root (ByteMLPerf's `general_perf/` dropped)."""
    path = Path(value)
    if path.is_absolute():
        return path
    parts = path.parts
    if parts and parts[0] == "general_perf":
        path = Path(*parts[1:])
    return REPO_ROOT / path


@dataclass
class SourceModel:
    """Where the weights come from, with a digest that keys every cache built from them."""

    kind: str  # "torchscript" | "onnx" | "hf_checkpoint" | "synthetic"
    digest: str
    path: Path | None = None
    hf_config: dict[str, Any] | None = None
    seed: int = 0
    note: str = ""
    convention: CallingConvention = field(default_factory=CallingConvention)  # how the entry feeds the module
    _module: Any = field(default=None, repr=False)

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    def report_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"kind": self.kind, "note": self.note}
        if self.path is not None:
            entry["path"] = str(self.path)
        if self.kind in ("torchscript", "onnx"):
            entry["sha256"] = self.digest
        if self.synthetic:
            entry["seed"] = self.seed
            entry["architecture"] = self.hf_config.get("_name", "") if self.hf_config else ""
        return entry

    def torch_module(self):
        """The model as a torch module taking positional inputs in the entry's order and returning a tuple."""
        if self._module is None:
            self._module = _build_module(self)
        return self._module


def resolve_source(model: ModelEntry, *, model_file: Path, seed: int = 0) -> SourceModel:
    """Pick the weights: model file, then HF checkpoint, then synthetic from the bundled architecture."""
    skipped = ""  # why an existing model_path was passed over, for the note of the fallback
    convention = CallingConvention(tuple(model.input_names), tuple(model.output_names), model.layout)
    if model.model_path:
        path = resolve_repo_path(model.model_path)
        if path.is_file():
            return _file_source(model, path, model_file)
        if path.is_dir() and model.model_format.lower() in TF_FORMATS:
            skipped = (
                f"TensorFlow {model.model_format} at {model.model_path} cannot run here ({_TF_FIX.format(path=path)}); "
            )
            if not (model.hf_model or model.architecture):
                raise UserError(
                    f"a TensorFlow {model.model_format} folder cannot run here",
                    file=model_file,
                    field="model_path",
                    fix=_TF_FIX.format(path=path),
                )
    if model.hf_model:
        checkpoint = _find_checkpoint(model.hf_model)
        if checkpoint is not None:
            config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
            return SourceModel(
                kind="hf_checkpoint",
                digest=_checkpoint_digest(checkpoint),
                path=checkpoint,
                hf_config=config,
                convention=convention,
                note=f"{skipped}Hugging Face checkpoint {model.hf_model}",
            )
    if model.architecture:
        from core.config.registry import architecture_config

        config = dict(architecture_config(model.architecture, model_file=model_file))
        config["_name"] = model.architecture
        if model.num_labels is not None:  # one architecture, the head each task needs
            config = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
            config["num_labels"] = model.num_labels
            if model.num_labels == 1:
                config["problem_type"] = "regression"
        return SourceModel(
            kind="synthetic",
            digest=_synthetic_digest(config, seed, convention),
            hf_config=config,
            convention=convention,
            seed=seed,
            note=f"{skipped}SYNTHETIC WEIGHTS: seeded random values; "
            "performance is faithful, accuracy is not meaningful" + _framework_note(model),
        )
    where = f"no file at {model.model_path}" if model.model_path else "no model_path"
    # Downloadable file, no bundled architecture: no library we use builds this network, only the file runs.
    file_only = bool(model.assets and model.model_path)
    if file_only:
        fix = (
            f"install it with `python -m core.prepare --task {model.model}` or put the file at "
            f"{resolve_repo_path(model.model_path)}"
        )
    elif model.assets:
        fix = "run `python -m core.prepare --task <task>`, or set hf_model or architecture"
    elif model.model_path:
        # Nothing to download: core.prepare would have nothing to offer.
        kind = "ONNX model" if model.model_format.lower() == "onnx" else "model"
        fix = f"put the {kind} file at {resolve_repo_path(model.model_path)} (this entry declares no download)"
    else:
        fix = "set model_path to a model file, or set hf_model or architecture"
    raise UserError(
        f"{where}, and no architecture for synthetic weights (no library we use builds it)"
        if file_only
        else f"{where}, no local Hugging Face checkpoint, and no architecture for synthetic weights",
        file=model_file,
        field="model_path",
        fix=fix,
    )


def _framework_note(model: ModelEntry) -> str:
    """What stands in for a model of another framework: compute does not depend on the framework."""
    framework = model.framework.lower()
    if framework.startswith(("pytorch", "torch", "onnx")):
        return ""
    return f"; the {model.framework} model is stood in for by the same architecture built in PyTorch"


_TF_FIX = (
    "convert it to ONNX, e.g. `pip install tf2onnx && python -m tf2onnx.convert --saved-model {path} "
    "--output model.onnx`, then set model_format onnx and model_path to the .onnx file"
)


def _file_source(model: ModelEntry, path: Path, model_file: Path) -> SourceModel:
    digest = file_sha256(path)
    if model.sha256 and model.sha256.lower() != digest:
        raise UserError(
            f"{path} has sha256 {digest[:12]}…, expected {model.sha256[:12]}…",
            file=model_file,
            field="sha256",
            fix="re-download the model (python -m core.prepare) or correct the digest",
        )
    fmt = model.model_format.lower()
    if fmt in ("pt", "pth", "torchscript"):
        kind = "torchscript"
    elif fmt == "onnx":
        kind = "onnx"
    elif fmt in TF_FORMATS:
        raise UserError(
            f"a TensorFlow {model.model_format} model cannot run here",
            file=model_file,
            field="model_path",
            fix=_TF_FIX.format(path=path),
        )
    else:
        raise UserError(
            f"model_format '{model.model_format}' is not supported",
            file=model_file,
            field="model_format",
            fix="use pt or onnx",
        )
    return SourceModel(kind=kind, digest=digest, path=path, note=f"model file {path.name}")


def _find_checkpoint(hf_model: str) -> Path | None:
    """A local folder, or the HF cache's snapshot, holding config.json. Never touches the network."""
    local = resolve_repo_path(hf_model) if not Path(hf_model).is_absolute() else Path(hf_model)
    if (local / "config.json").is_file():
        return local
    if Path(hf_model).is_absolute() or hf_model.count("/") > 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(hf_model, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent
    return None


def _builder_digest() -> str:
    """The wrapper decides how inputs reach the model, so its code is part of every built module's key."""
    from core.common.artifact_cache import code_digest
    from core.model import builder as module_builder

    return code_digest(Path(module_builder.__file__))


def _checkpoint_digest(folder: Path) -> str:
    digest = hashlib.sha256(_builder_digest().encode())
    for path in sorted(folder.iterdir()):
        if path.suffix in (".safetensors", ".bin", ".json"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _synthetic_digest(config: dict[str, Any], seed: int, convention: CallingConvention) -> str:
    from core.measure.host import software_versions

    library = library_of(config)  # random init differs across versions, so the version is part of the key
    payload = json.dumps(
        {
            "config": config,
            "seed": seed,
            library: software_versions().get(library),
            "convention": asdict(convention),
            "builder": _builder_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _build_module(source: SourceModel):
    if source.kind == "torchscript":
        import torch

        # TorchScript files are code: we load them only from the model zoo (see README).
        try:
            module = torch.jit.load(str(source.path), map_location="cpu")
        except (RuntimeError, ValueError) as err:  # corrupt, truncated, or not TorchScript at all
            raise UserError(
                f"not a loadable TorchScript file: {str(err).splitlines()[0].split('. ')[0][:200]}",
                file=source.path,
                field="model_path",
                fix="re-download it (python -m core.prepare --task <task>) "
                "or point model_path at a torch.jit.save file",
            ) from None
        return module.eval()
    if source.kind == "onnx":
        raise UserError("an ONNX model file has no torch module", file=source.path, fix="use the onnxruntime engine")
    from core.model.builder import build_module

    return build_module(
        source.kind,
        source.hf_config or {},
        seed=source.seed,
        checkpoint=source.path,
        convention=source.convention,
        where=source.path or (source.hf_config or {}).get("_name"),
    )
