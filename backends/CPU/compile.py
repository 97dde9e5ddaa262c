"""CPU compile backend: export to ONNX and optimize for onnxruntime, or load the PyTorch module.

ONNX artifacts are cached under <state>/compiled/<model>/<key>/, keyed by the source weights'
digest, the stage options and the library versions; a second run with the same key skips export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from backends.base import CompileBackend, CompiledModel, CompileRequest
from backends.CPU.config import CpuConfig
from core.errors import UserError

log = logging.getLogger(__name__)

ONNX_PRECISIONS = ("FP32", "INT8")
TORCH_PRECISIONS = ("FP32", "BF16")
ARTIFACT = "model.onnx"
META = "compile.json"


def _pipeline_digest() -> str:
    """Digest of the code that writes artifacts, so a changed stage never reuses a stale cache."""
    digest = hashlib.sha256()
    for module in ("compile.py", "onnx_stages.py"):
        digest.update((Path(__file__).parent / module).read_bytes())
    return digest.hexdigest()[:16]


def _library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
    }


class CpuCompileBackend(CompileBackend):
    config: CpuConfig

    def compile(self, request: CompileRequest) -> CompiledModel:
        if self.config.engine == "pytorch":
            return self._load_torch(request)
        return self._compile_onnx(request)

    # --- PyTorch engine: nothing to export; load the module once ---------------------------------

    def _load_torch(self, request: CompileRequest) -> CompiledModel:
        if request.precision not in TORCH_PRECISIONS:
            raise UserError(
                f"precision {request.precision} is not supported by the CPU pytorch engine",
                field="precision",
                fix=f"use one of {', '.join(TORCH_PRECISIONS)}, or engine onnxruntime for INT8",
            )
        if request.source.kind == "onnx":
            raise UserError("the pytorch engine cannot run an ONNX model file", field="engine", fix="use engine onnxruntime")
        import torch

        start = time.perf_counter()
        module = request.source.torch_module()
        optimizations = ["inference_mode"]
        if request.precision == "BF16":
            module = module.to(torch.bfloat16)
            optimizations.append("bf16 weights")
        if self.config.torch_compile:
            module = torch.compile(module)
            optimizations.append("torch.compile")
        return CompiledModel(
            engine="pytorch",
            precision=request.precision,
            artifact=request.source.path,
            input_names=request.model.input_names,
            output_names=request.model.output_names,
            compile_seconds=time.perf_counter() - start,
            cache_hit=False,
            optimizations=optimizations,
            module=module,
        )

    # --- onnxruntime engine: export, simplify, fuse, quantize; cached ----------------------------

    def _stage_options(self, request: CompileRequest) -> dict[str, Any]:
        return {
            "opset": self.config.opset,
            "simplify": self.config.simplify,
            "optimize": self.config.optimize,
            "precision": request.precision,
            "int8_mode": self.config.int8_mode if request.precision == "INT8" else None,
        }

    def cache_key(self, request: CompileRequest) -> str:
        payload = {
            "source": request.source.digest,
            "inputs": request.model.input_names,
            "outputs": request.model.output_names,
            "stages": self._stage_options(request),
            "versions": _library_versions(),
            "pipeline": _pipeline_digest(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def _compile_onnx(self, request: CompileRequest) -> CompiledModel:
        if request.precision not in ONNX_PRECISIONS:
            raise UserError(
                f"precision {request.precision} is not supported by the CPU onnxruntime engine",
                field="precision",
                fix=f"use one of {', '.join(ONNX_PRECISIONS)} (BF16: engine pytorch)",
            )
        if request.precision == "INT8" and self.config.int8_mode == "static" and request.calibration_feeds is None:
            raise UserError("static INT8 needs calibration data", field="engine_options.int8_mode", fix="give the model a dataset_name, or use int8_mode dynamic")
        start = time.perf_counter()
        target = request.cache_dir / "compiled" / request.model.model / self.cache_key(request)
        meta_path = target / META
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            return self._compiled(target, meta, time.perf_counter() - start, cache_hit=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build in a private folder, then rename it into place: a concurrent run never sees half a cache.
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
        try:
            meta = self._run_stages(request, work)
            meta["compile_seconds"] = round(time.perf_counter() - start, 3)
            (work / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
            try:
                os.replace(work, target)
            except OSError:
                if not meta_path.is_file():  # not a concurrent winner: a real failure
                    raise
                log.info("another run cached %s first; using its artifact", target.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return self._compiled(target, meta, time.perf_counter() - start, cache_hit=False)

    def _compiled(self, folder: Path, meta: dict[str, Any], seconds: float, *, cache_hit: bool) -> CompiledModel:
        return CompiledModel(
            engine="onnxruntime",
            precision=meta["precision"],
            artifact=folder / ARTIFACT,
            input_names=meta["input_names"],
            output_names=meta["output_names"],
            compile_seconds=seconds,
            cache_hit=cache_hit,
            optimizations=meta["optimizations"],
            details={"stages": meta["stages"], "cache_key": folder.name, "first_compile_seconds": meta.get("compile_seconds")},
        )

    def _run_stages(self, request: CompileRequest, work: Path) -> dict[str, Any]:
        from backends.CPU import onnx_stages

        stages: list[dict[str, Any]] = []
        optimizations: list[str] = []
        current = work / "exported.onnx"
        if request.source.kind == "onnx":
            _check_onnx_file(request.source.path)
            shutil.copyfile(request.source.path, current)
            optimizations.append("onnx model file")
        else:
            feeds = request.sample_feeds(1)
            result = onnx_stages.export_onnx(
                request.source.torch_module(), feeds, request.model.output_names, current, opset=self.config.opset
            )
            stages.append(_stage_record(result))
            optimizations.append(f"torch->onnx export (opset {self.config.opset}, dynamic batch and sequence)")

        def advance(name: str, run) -> None:
            nonlocal current
            out = work / f"{name}.onnx"
            result = run(current, out)
            stages.append(_stage_record(result))
            current = Path(result.path)

        arch = _architecture(request)
        model_type = onnx_stages.fusion_model_type(arch.get("model_type", "")) if arch else None
        fused_ok = bool(self.config.optimize and model_type)
        if fused_ok:
            advance(
                "optimized",
                lambda src, dst: onnx_stages.optimize_transformer(
                    src, dst, model_type=model_type, num_heads=arch["num_attention_heads"], hidden_size=arch["hidden_size"]
                ),
            )
            fused = stages[-1]["details"].get("fused", {})
            optimizations.append("onnxruntime transformer fusion: " + ", ".join(f"{k} x{v}" for k, v in fused.items() if v))
        elif self.config.optimize:
            optimizations.append("transformer fusion skipped: no fusion rules for this architecture")
        # Never before fusion (onnxslim's rewrites hide the attention pattern, and it copies ALBERT's
        # shared layer weights into every layer); after fusion it found nothing left to do.
        if self.config.simplify and not fused_ok:
            advance("simplified", onnx_stages.simplify)
            optimizations.append("onnxslim simplification")
        if request.precision == "INT8":
            if self.config.int8_mode == "static":
                feeds = request.calibration_feeds()
                advance("int8", lambda src, dst: onnx_stages.quantize_int8_static(src, dst, feeds))
            else:
                advance("int8", onnx_stages.quantize_int8_dynamic)
            optimizations.append(f"int8 {self.config.int8_mode} quantization")
        final = work / ARTIFACT
        os.replace(current, final)
        for leftover in work.glob("*.onnx*"):
            if leftover != final:
                leftover.unlink()
        import onnx

        graph = onnx.load(str(final), load_external_data=False).graph
        return {
            "precision": request.precision,
            "input_names": [i.name for i in graph.input],
            "output_names": [o.name for o in graph.output],
            "optimizations": optimizations,
            "stages": stages,
        }


def _check_onnx_file(path: Path) -> None:
    """A model file from the zoo is untrusted input: refuse garbage with one line before any stage reads it."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as err:
        raise UserError(f"not a readable ONNX model: {str(err).splitlines()[0][:200]}", file=path, field="model_path",
                        fix="re-download it (python -m core.prepare --task <task>) or fix model_path") from None
    if not model.graph.node or not model.graph.output:
        raise UserError("the ONNX file holds no graph", file=path, field="model_path",
                        fix="re-download it (python -m core.prepare --task <task>) or fix model_path")


def _stage_record(result) -> dict[str, Any]:
    return {"name": result.name, "seconds": round(result.seconds, 3), "details": result.details}


def _architecture(request: CompileRequest) -> dict[str, Any] | None:
    """Architecture facts (model type, heads, hidden size) for the fusion pass, if we know them."""
    if request.source.hf_config:
        return request.source.hf_config
    if request.model.architecture:
        from core.registry import architecture_config

        return architecture_config(request.model.architecture)
    return None
