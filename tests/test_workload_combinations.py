"""Every workload a user can write runs or is refused in one line: a property test over the switches together.

Each drawn case is a workload file (and maybe command-line overrides) run through the real command in this
process. It must end in exit 0 with a report that reads back, exit 2 with one `error:` line naming a field,
or exit 1 with a report whose failed rows carry their error; never an exception. CI draws a few cases
(the suite's profile, tests/conftest.py); `pytest tests/test_workload_combinations.py --hypothesis-profile
long` draws hundreds.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.perf_engine import main
from core.reporting.report import RunReport

# A model per kind of data: SQuAD, GLUE, images, and none (an ONNX UNet with generated inputs).
MODELS = ("tiny-bert-squad", "tiny-deberta-cola", "tiny-resnet-imagenet", "tiny-sd-unet")
PRECISIONS = ("auto", "FP32", "BF16", "INT8", "FP16", "TF32")
ENGINES = {"CPU": ("auto", "onnxruntime", "openvino", "pytorch", "tensorrt"), "GPU": ("auto", "eager", "cuda-graph")}
# This host as it is, and one without bf16 or int8 dot products (PERFBENCH_CPU_FLAGS): pinned choices it lacks.
HOSTS = (None, "avx2 fma")
SHORT = {"iterations": 3, "warmup_iterations": 1, "warmup_seconds": 0.2, "min_seconds": 0, "max_seconds": 0.3}


@st.composite
def cases(draw):
    hardware = draw(st.sampled_from(("CPU", "GPU")))
    workload = {
        "model": draw(st.sampled_from(MODELS)),
        "batch_sizes": [1],
        "test_accuracy": draw(st.booleans()),
        "test_numeric": draw(st.booleans()),
        "test_perf": draw(st.booleans()),
        "compile_only": draw(st.booleans()),
        "clients": draw(st.sampled_from((1, 2))),
        "data_percent": 10,
        **SHORT,
    }
    flags = []
    for field in ("engine", "precision"):
        choice = draw(st.sampled_from(ENGINES[hardware] if field == "engine" else PRECISIONS))
        where = draw(st.sampled_from(("default", "file", "flag")))
        if where == "file":
            workload[field] = choice
        elif where == "flag":
            flags += [f"--{field}", choice]
    if hardware == "GPU":
        workload["engine_options"] = {"device": "cpu", "auto_precisions": ["FP32", "BF16"]}
    return hardware, workload, flags, draw(st.sampled_from(HOSTS))


@settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=cases())
def test_every_workload_runs_or_is_refused_in_one_line(case, capsys, tmp_path_factory):
    hardware, workload, flags, cpu_flags = case
    folder = tmp_path_factory.mktemp("case")
    path = folder / "workload.json"
    path.write_text(json.dumps(workload), encoding="utf-8")
    out = folder / "reports"
    argv = ["--hardware_type", hardware, "--task", str(path), "--output-dir", str(out), *flags]
    previous = os.environ.get("PERFBENCH_CPU_FLAGS")
    if cpu_flags is not None:
        os.environ["PERFBENCH_CPU_FLAGS"] = cpu_flags
    capsys.readouterr()
    try:
        code = main(argv)  # anything but a UserError escapes here and fails the case
    finally:
        if cpu_flags is None:
            os.environ.pop("PERFBENCH_CPU_FLAGS", None)
        elif previous is None:
            del os.environ["PERFBENCH_CPU_FLAGS"]
        else:
            os.environ["PERFBENCH_CPU_FLAGS"] = previous
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and ": " in errors[0][len("error: ") :], err[-1500:]
        return
    reports = sorted((out / hardware / workload["model"]).rglob("*.json"))
    reports = [p for p in reports if p.parent.name in (workload["model"], "runs") and not p.name.endswith("-meta.json")]
    assert code in (0, 1) and reports, (code, err[-1500:])
    report = RunReport.from_dict(json.loads(reports[-1].read_text(encoding="utf-8")), source=reports[-1])
    if code == 1:
        assert report.failed_batch_sizes and all(row.error for row in report.performance if not row.ok)
    else:
        assert not report.failed_batch_sizes
        assert report.performance or workload["compile_only"] or not workload["test_perf"]
