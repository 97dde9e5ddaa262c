"""Length-grouped execution trims padding yet gives the padded run's answers."""

from __future__ import annotations

import numpy as np
import pytest
from test_cpu_engines import compile_and_load

from core.config import registry
from core.measure.dataset_pass import PAD_MULTIPLE, run_features


class CountingRuntime:
    """Wraps a runtime and records the sequence width of every batch it is given."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.widths: list[int] = []

    def load(self, batch_size):
        self.runtime.load(batch_size)

    def predict(self, feeds):
        self.widths.append(next(iter(feeds.values())).shape[1])
        return self.runtime.predict(feeds)


@pytest.fixture(scope="module")
def squad_setup():
    task = registry.load_task("tiny-bert-squad")
    from core.run.context import make_loader

    _, runtime, inputs = compile_and_load(task, "onnxruntime")
    loader = make_loader(task, inputs)
    return loader, loader.load(), runtime


def test_grouped_matches_padded_at_valid_positions(squad_setup):
    loader, features, runtime = squad_setup
    padded_runtime, grouped_runtime = CountingRuntime(runtime), CountingRuntime(runtime)
    padded, _ = run_features(padded_runtime, features, 8, length_aware=False)
    grouped, _ = run_features(grouped_runtime, features, 8, length_aware=True)
    seq_len = features.inputs["input_ids.1"].shape[1]
    assert set(padded_runtime.widths) == {seq_len}
    # Grouping really trims: most batches are narrower than the padded length,
    # all are multiples of 8 or the full length.
    assert sum(grouped_runtime.widths) < sum(padded_runtime.widths)
    assert all(w % PAD_MULTIPLE == 0 or w == seq_len for w in grouped_runtime.widths)
    valid = np.arange(seq_len)[None, :] < features.lengths[:, None]
    for name in padded:
        np.testing.assert_allclose(grouped[name][valid], padded[name][valid], atol=1e-4, rtol=1e-4)
    # Identical answers, so identical EM/F1.
    assert loader.evaluate(grouped) == loader.evaluate(padded)


def test_outputs_come_back_in_feature_order(squad_setup):
    _, features, runtime = squad_setup
    grouped, _ = run_features(runtime, features, 4, length_aware=True)
    # Running each feature alone (no grouping, no batching) gives the same row for the same index.
    for index in (0, len(features) // 2, len(features) - 1):
        one = {k: v[index : index + 1] for k, v in features.inputs.items()}
        alone = runtime.predict(one)
        length = features.lengths[index]
        for name, value in alone.items():
            np.testing.assert_allclose(grouped[name][index, :length], value[0, :length], atol=1e-4, rtol=1e-4)
