"""The CPU backend: onnxruntime, OpenVINO or PyTorch on the host processor, chosen by measurement."""

from backends.base import BackendSpec
from backends.CPU.compile import CpuCompileBackend, runtime_for
from backends.CPU.config import CpuConfig
from backends.CPU.engines import native_engines

BACKEND = BackendSpec(
    name="CPU",
    description="host CPU: onnxruntime, OpenVINO or PyTorch at FP32/BF16/INT8; "
    "auto picks the fastest that passes the accuracy gate",
    config_class=CpuConfig,
    compile_backend=CpuCompileBackend,
    runtime_backend=runtime_for,
    roof_engines=native_engines,
    llm_device=lambda config: "cpu",
)
