"""The torch -> ONNX export both onnxruntime and OpenVINO start from, cached once per model.

An ONNX model file from the zoo is used as it is, after a check that it is a readable graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.base import CompileRequest
from core.common.artifact_cache import cached_folder, code_digest
from core.common.errors import UserError, one_line
from core.measure.host import software_versions

EXPORTED = "exported.onnx"


def library_versions(*names: str) -> dict[str, str | None]:
    """The versions of the libraries a stage depends on, for its cache key."""
    versions = software_versions()
    return {name: versions.get(name) for name in names}


def exported_onnx(request: CompileRequest, opset: int) -> tuple[Path, dict[str, Any] | None, bool]:
    """(ONNX file, export stage record or None for a model file, cache hit)."""
    from backends.CPU import onnx_stages

    if request.source.kind == "onnx":
        check_onnx_file(request.source.path)
        return request.source.path, None, True
    payload = {
        "source": request.source.digest,
        "inputs": request.model.input_names,
        "outputs": request.model.output_names,
        "opset": opset,
        "versions": library_versions("torch", "transformers", "onnx"),
        "code": code_digest(Path(onnx_stages.__file__), Path(__file__)),
    }

    def build(work: Path) -> dict[str, Any]:
        result = onnx_stages.export_onnx(
            request.source.torch_module(),
            request.sample_feeds(1),
            request.model.output_names,
            work / EXPORTED,
            opset=opset,
        )
        return {"stage": stage_record(result)}

    entry = cached_folder(request.cache_dir / "compiled" / request.model.model / "export", payload, build)
    return entry.path / EXPORTED, entry.meta["stage"], entry.hit


def stage_record(result) -> dict[str, Any]:
    return {"name": result.name, "seconds": round(result.seconds, 3), "details": result.details}


def check_onnx_file(path: Path) -> None:
    """A model file from the zoo is untrusted input: refuse garbage with one line before any stage reads it."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as err:
        raise UserError(
            f"not a readable ONNX model: {one_line(err, 200)}",
            file=path,
            field="model_path",
            fix="re-download it (python -m core.prepare --task <task>) or fix model_path",
        ) from None
    if not model.graph.node or not model.graph.output:
        raise UserError(
            "the ONNX file holds no graph",
            file=path,
            field="model_path",
            fix="re-download it (python -m core.prepare --task <task>) or fix model_path",
        )


def graph_io(path: Path) -> tuple[list[str], list[str]]:
    """The input and output names an ONNX graph declares."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [i.name for i in graph.input], [o.name for o in graph.output]


def architecture(request: CompileRequest) -> dict[str, Any] | None:
    """Architecture facts (model type, heads, hidden size) for fusion passes, if we know them."""
    if request.source.hf_config:
        return request.source.hf_config
    if request.model.architecture:
        from core.config.registry import architecture_config

        return architecture_config(request.model.architecture)
    return None
