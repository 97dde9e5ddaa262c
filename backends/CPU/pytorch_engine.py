"""PyTorch engine: the TorchScript file or the Hugging Face module, eager under inference_mode.

BF16 runs a bfloat16 copy of the weights (the source module stays FP32: it is also the numeric
reference and the export's input).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import CompiledModel, CompileRequest, Feeds, RuntimeBackend, declared_feeds
from backends.CPU.config import CpuConfig
from backends.CPU.engines import Engine, pin_process, unsupported_precision
from core.common.errors import UserError

PRECISIONS = ("FP32", "BF16")


def compile_model(request: CompileRequest, config: CpuConfig) -> CompiledModel:
    if request.precision not in PRECISIONS:
        raise unsupported_precision("pytorch", request.precision, PRECISIONS)
    if request.source.kind == "onnx":
        raise UserError(
            "the pytorch engine cannot run an ONNX model file", field="engine", fix="use engine onnxruntime or openvino"
        )
    import torch

    start = time.perf_counter()
    module = request.source.torch_module()
    optimizations = ["inference_mode"]
    if request.precision == "BF16":
        module = copy.deepcopy(module).to(torch.bfloat16)
        optimizations.append("bf16 weights")
    if config.pytorch.torch_compile:
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


class TorchBackend(RuntimeBackend):
    config: CpuConfig
    instance_count = 1

    def load(self, batch_size: int) -> None:
        import torch

        pin_process(self.config)
        torch.set_num_threads(max(1, self.config.intra_op_threads // self.instance_count))
        self.batch_size = batch_size

    def instances(self, count: int) -> list[RuntimeBackend]:
        import torch

        # Inference under inference_mode is thread-safe; the threads are split so clients share the cores.
        self.instance_count = count
        torch.set_num_threads(max(1, self.config.intra_op_threads // count))
        return [self] * count

    def _tensors(self, feeds: Feeds):
        import torch

        tensors = [torch.from_numpy(array) for array in declared_feeds(feeds, self.compiled.input_names).values()]
        if self.compiled.precision == "BF16":  # a bf16 module wants bf16 images and features; ids stay integers
            tensors = [t.to(torch.bfloat16) if t.is_floating_point() else t for t in tensors]
        return tensors

    def _run(self, tensors):
        import torch

        with torch.inference_mode():
            outputs = self.compiled.module(*tensors)
        if isinstance(outputs, dict):
            outputs = tuple(outputs.values())
        elif not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return outputs

    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        outputs = self._run(self._tensors(feeds))
        return {name: out.float().numpy() for name, out in zip(self.compiled.output_names, outputs)}

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        tensors = self._tensors(feeds)
        return lambda: self._run(tensors)

    def peak_probe(self, precision: str):
        from core.measure.peak import torch_gemm_probe

        return torch_gemm_probe(precision, max(1, self.config.intra_op_threads // self.instance_count))

    def profile(self, feeds: Feeds, calls: int, folder: Path):
        from backends.torch_profiler import torch_profile

        return torch_profile("pytorch", self.bind(feeds), calls, folder)

    def settings(self) -> dict[str, Any]:
        import torch

        return {
            "engine": "pytorch",
            "intra_op_threads": self.config.intra_op_threads,
            "torch_threads": torch.get_num_threads(),
            "instances": self.instance_count,
            "inference_mode": True,
            "torch_compile": self.config.pytorch.torch_compile,
        }


ENGINE = Engine(name="pytorch", precisions=PRECISIONS, compile=compile_model, runtime=TorchBackend)
