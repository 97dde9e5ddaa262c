"""The CPU FP32 reference outputs that numeric drift and the accuracy gate compare against.

Built through the backend registry like any run: the CPU backend's PyTorch engine at FP32 on the
source's torch module, or, for an ONNX model file (no torch module), its onnxruntime engine at FP32
without graph rewrites. Cached per weights and input row as .npz (never pickle), so the gate's sample and
the accuracy pass never compute one input twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from backends.base import CompileRequest, Feeds
from core.common import console
from core.common.paths import state_dir
from core.config.schema import ModelEntry
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.model.source import SourceModel
from datasets.base import Features

log = logging.getLogger(__name__)


def row_digests(features: Features) -> list[str]:
    """One digest per feature (its inputs and true length): what a reference row is stored and found by."""
    names = sorted(features.inputs)
    digests = []
    for i in range(len(features)):
        digest = hashlib.sha256()
        for name in names:
            row = np.ascontiguousarray(features.inputs[name][i])
            digest.update(f"{name}:{row.dtype.str}:{row.shape}".encode())
            digest.update(row.tobytes())
        digest.update(np.int64(features.lengths[i]).tobytes())
        digests.append(digest.hexdigest()[:24])
    return digests


def take(features: Features, rows) -> Features:
    """The features at `rows` (indices or a slice), in that order."""
    return replace(features, inputs={k: v[rows] for k, v in features.inputs.items()}, lengths=features.lengths[rows])


def reference_label(source: SourceModel) -> str:
    return "CPU onnxruntime FP32 (unoptimized)" if source.kind == "onnx" else "CPU pytorch FP32"


def reference_outputs(
    model: ModelEntry, source: SourceModel, features: Features, sample_feeds: Callable[[int], Feeds]
) -> dict[str, np.ndarray]:
    """The reference's outputs on `features`, each input computed once per weights: rows already computed (by the
    gate's sample, an earlier accuracy pass or run) are read back, only the others are run."""
    engine = "onnxruntime" if source.kind == "onnx" else "pytorch"
    folder = state_dir() / "reference" / model.model / f"{engine}-{source.digest[:20]}"
    digests = row_digests(features)
    found = _stored(folder, set(digests))
    missing = [i for i, digest in enumerate(digests) if digest not in found]
    if missing:
        console.info(
            f"computing the {reference_label(source)} reference outputs for {len(missing)} of {len(digests)} inputs"
            + (" (the others computed before)" if len(missing) < len(digests) else "")
            + " (cached for later runs)"
        )
        outputs = _compute(model, source, take(features, missing), sample_feeds, engine)
        new = [digests[i] for i in missing]
        name = hashlib.sha256("".join(new).encode()).hexdigest()[:20]
        from core.common.arrays import save_arrays

        save_arrays(folder / f"{name}.npz", outputs, {"rows": new, "engine": engine, "precision": "FP32"})
        for j, digest in enumerate(new):
            found[digest] = {key: value[j] for key, value in outputs.items()}
    names = list(found[digests[0]]) if digests else []
    return {key: np.stack([found[digest][key] for digest in digests]) for key in names}


def _stored(folder: Path, wanted: set[str]) -> dict[str, dict[str, np.ndarray]]:
    """Row digest -> that row's stored outputs, for the wanted rows found in `folder` (unreadable files skipped:
    a concurrent run's half-written file or a damaged one is computed again)."""
    from core.common.arrays import load_arrays

    found: dict[str, dict[str, np.ndarray]] = {}
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rows = json.loads(sidecar.read_text(encoding="utf-8"))["meta"]["rows"]
            hits = [j for j, digest in enumerate(rows) if digest in wanted and digest not in found]
            if not hits:
                continue
            arrays, _ = load_arrays(sidecar.with_suffix(".npz"))
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
            log.warning("skipping unreadable reference outputs %s: %s", sidecar, err)
            continue
        for j in hits:
            found[rows[j]] = {key: value[j] for key, value in arrays.items()}
    return found


def _compute(
    model: ModelEntry, source: SourceModel, features: Features, sample_feeds: Callable[[int], Feeds], engine: str
) -> dict[str, np.ndarray]:
    from backends import load_backend

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
