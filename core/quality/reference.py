"""The CPU FP32 reference outputs that numeric drift and the accuracy gate compare against.

Built through the backend registry like any run: the CPU backend's PyTorch engine at FP32 on the
source's torch module, or, for an ONNX model file (no torch module), its onnxruntime engine at FP32
without graph rewrites. Cached per weights and features as .npz (never pickle).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from backends.base import CompileRequest, Feeds
from core.common import console
from core.common.paths import state_dir
from core.config.schema import ModelEntry
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.model.source import SourceModel
from datasets.base import Features


def features_digest(features: Features) -> str:
    digest = hashlib.sha256()
    for name in sorted(features.inputs):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(features.inputs[name]).tobytes())
    digest.update(np.ascontiguousarray(features.lengths).tobytes())
    return digest.hexdigest()[:20]


def reference_label(source: SourceModel) -> str:
    return "CPU onnxruntime FP32 (unoptimized)" if source.kind == "onnx" else "CPU pytorch FP32"


def reference_outputs(
    model: ModelEntry, source: SourceModel, features: Features, sample_feeds: Callable[[int], Feeds]
) -> dict[str, np.ndarray]:
    """The reference's outputs on `features`, computed once per weights and features."""
    from core.common.arrays import load_or_build

    engine = "onnxruntime" if source.kind == "onnx" else "pytorch"
    path = state_dir() / "reference" / model.model / f"{engine}-{source.digest[:20]}-{features_digest(features)}.npz"

    def build() -> dict[str, np.ndarray]:
        from backends import load_backend

        console.info(f"computing the {reference_label(source)} reference outputs (cached for later runs)")
        spec = load_backend("CPU")
        options = {"optimize": False, "simplify": False} if engine == "onnxruntime" else {}
        config = spec.make_config(engine, options, source="reference")
        request = CompileRequest(
            model=model,
            source=source,
            precision="FP32",
            batch_sizes=[DATASET_BATCH_SIZE],
            cache_dir=state_dir(),
            sample_feeds=sample_feeds,
        )
        runtime = spec.runtime_backend(spec.compile_backend(config).compile(request), config)
        try:
            with console.progress("reference", total=len(features)) as advance:
                outputs, _ = run_features(runtime, features, DATASET_BATCH_SIZE, length_aware=True, on_batch=advance)
        finally:
            runtime.close()
        return outputs

    # Absent, half-written by a concurrent run, or corrupt: load_or_build recomputes it.
    reference, _ = load_or_build(path, build, {"engine": engine, "precision": "FP32", "source": source.kind})
    return reference
