"""The GPU backend: a PyTorch module on a CUDA device (ROCm through the same torch API), run eager, as
CUDA graphs or through torch.compile at FP32/TF32/FP16/BF16; auto picks the fastest that passes the
accuracy gate against the CPU FP32 reference. Needs a CUDA build of torch (README, 'Accelerators')."""

from backends.base import BackendSpec
from backends.GPU.compile import GpuCompileBackend
from backends.GPU.config import GpuConfig
from backends.GPU.device import device_facts, fingerprint, listing_note, unavailable_reason


def _nvml_counter(device: str):
    from backends.GPU.meters import nvml_counter

    return nvml_counter(device)


def _runtime(compiled, config: GpuConfig):
    from backends.GPU.runtime import GpuRuntime

    return GpuRuntime(compiled, config)


BACKEND = BackendSpec(
    name="GPU",
    description="GPU through PyTorch: eager, CUDA graphs or torch.compile at FP32/TF32/FP16/BF16; "
    "auto picks the fastest that passes the accuracy gate",
    config_class=GpuConfig,
    compile_backend=GpuCompileBackend,
    runtime_backend=_runtime,
    # What is on disk answers first (no torch import: a refusal in a second), then torch itself.
    unavailable=lambda config: (
        None if config.device == "cpu" else (listing_note() or unavailable_reason(config.device))
    ),
    listing_note=listing_note,
    device_facts=lambda config: device_facts(config.device),
    device_fingerprint=fingerprint,
    llm_device=lambda config: config.device,
    llm_energy=lambda config: _nvml_counter(config.device),
)
