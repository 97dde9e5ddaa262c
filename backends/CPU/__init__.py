"""The CPU backend: onnxruntime (default) or PyTorch, on the host processor."""

from backends.base import BackendSpec
from backends.CPU.compile import CpuCompileBackend
from backends.CPU.config import CpuConfig
from backends.CPU.runtime import CpuRuntimeBackend

BACKEND = BackendSpec(
    name="CPU",
    description="host CPU: onnxruntime (export + fusion, default) or PyTorch (TorchScript/eager)",
    config_class=CpuConfig,
    compile_backend=CpuCompileBackend,
    runtime_backend=CpuRuntimeBackend,
)
