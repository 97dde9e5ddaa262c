"""CPU runtime backends: onnxruntime (default) and PyTorch."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from backends.base import CompiledModel, Feeds, RuntimeBackend
from backends.CPU.config import CpuConfig
from core.errors import UserError


def _pin(config: CpuConfig) -> None:
    """Pin this process to the configured CPUs, so a shared machine's other load stays off them."""
    if config.cpu_affinity:
        try:
            os.sched_setaffinity(0, set(config.cpu_affinity))
        except (AttributeError, OSError) as err:
            raise UserError(f"cannot pin to CPUs {config.cpu_affinity}: {err}", field="engine_options.cpu_affinity") from None


def _declared(feeds: Feeds, names: list[str]) -> Feeds:
    """Only the inputs the compiled graph declares (e.g. DeBERTa exports drop token_type_ids)."""
    missing = [n for n in names if n not in feeds]
    if missing:
        raise UserError(f"the model expects inputs {', '.join(missing)} that the data does not provide", field="inputs")
    return {name: np.ascontiguousarray(feeds[name]) for name in names}


class OnnxRuntimeBackend(RuntimeBackend):
    config: CpuConfig

    def __init__(self, compiled: CompiledModel, config: CpuConfig):
        super().__init__(compiled, config)
        self.session = None

    def load(self, batch_size: int) -> None:
        # The graph has dynamic batch and sequence axes: one session serves every batch size.
        if self.session is None:
            import onnxruntime as ort

            _pin(self.config)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.config.intra_op_threads
            options.inter_op_num_threads = self.config.inter_op_threads
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.config.spin else "0")
            try:
                self.session = ort.InferenceSession(str(self.compiled.artifact), options, providers=["CPUExecutionProvider"])
            except Exception as err:  # onnxruntime raises its own exception types for corrupt files
                raise UserError(f"onnxruntime cannot load the model: {str(err).splitlines()[0]}", file=self.compiled.artifact) from None
        self.batch_size = batch_size

    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        names = self.compiled.output_names
        results = self.session.run(names, _declared(feeds, self.compiled.input_names))
        return dict(zip(names, results))

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        if not self.config.io_binding:
            return super().bind(feeds)
        import onnxruntime as ort

        # Inputs are bound once and outputs preallocated (their shapes from one untimed run),
        # so the timed call only runs the graph: no copies, no allocations.
        declared = _declared(feeds, self.compiled.input_names)
        shapes = self.predict(declared)
        binding = self.session.io_binding()
        for name, array in declared.items():
            binding.bind_cpu_input(name, array)
        for name in self.compiled.output_names:
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(np.empty_like(shapes[name])))
        session = self.session
        return lambda: session.run_with_iobinding(binding)

    def settings(self) -> dict[str, Any]:
        return {
            "engine": "onnxruntime",
            "providers": ["CPUExecutionProvider"],
            "intra_op_threads": self.config.intra_op_threads,
            "inter_op_threads": self.config.inter_op_threads,
            "cpu_affinity": self.config.cpu_affinity,
            "io_binding": self.config.io_binding,
            "spinning": self.config.spin,
        }

    def close(self) -> None:
        self.session = None


class TorchBackend(RuntimeBackend):
    config: CpuConfig

    def load(self, batch_size: int) -> None:
        import torch

        _pin(self.config)
        torch.set_num_threads(self.config.intra_op_threads)
        self.batch_size = batch_size

    def _tensors(self, feeds: Feeds):
        import torch

        return [torch.from_numpy(array) for array in _declared(feeds, self.compiled.input_names).values()]

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

    def settings(self) -> dict[str, Any]:
        import torch

        return {
            "engine": "pytorch",
            "intra_op_threads": self.config.intra_op_threads,
            "torch_threads": torch.get_num_threads(),
            "inference_mode": True,
            "torch_compile": self.config.torch_compile,
        }


class CpuRuntimeBackend(RuntimeBackend):
    """Dispatches to the engine the compile step chose."""

    def __new__(cls, compiled: CompiledModel, config: CpuConfig):
        engine = TorchBackend if compiled.engine == "pytorch" else OnnxRuntimeBackend
        return engine(compiled, config)
