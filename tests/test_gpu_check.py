"""benchmarks/gpu_check.py as a GPU host would run it, here on `device cpu` with tiny models: only the
packages such a host has (our CPU stack hidden), every contender measured, the JSON summary written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.py"
# What a GPU host's python3 lacks (GUIDE §7, and what the check must not need): hidden as absent.
ABSENT = ("openvino", "nncf", "mlcommons_loadgen", "ray", "diffusers", "onnxslim", "onnxscript", "matplotlib")


def run_as_gpu_host(tmp_path: Path, *args: str, absent: tuple[str, ...] = ABSENT) -> subprocess.CompletedProcess:
    runner = tmp_path / "as_gpu_host.py"
    runner.write_text(
        "import runpy, sys\n"
        f"for name in {absent!r}:\n"
        "    sys.modules[name] = None  # import fails and find_spec answers None, as for a package not installed\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, str(runner), str(CHECK), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_the_check_runs_with_only_the_gpu_hosts_packages(tmp_path):
    out = tmp_path / "out"
    run = run_as_gpu_host(tmp_path, "--device", "cpu", "--tiny", "--no-compile", "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("device: torch device cpu") and lines[2].startswith("torch ")
    assert any(line.startswith("matrix multiply: FP16 ") for line in lines)
    assert any(line.startswith("target ours >= 1.0x the fastest peer: ") for line in lines)
    summary = json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))
    assert set(summary["matmul_tflops"]) == {"FP16", "BF16", "TF32"}
    results = summary["results"]
    assert [(r["model"], r["bs"]) for r in results] == [
        ("tiny-bert", 1),
        ("tiny-bert", 2),
        ("tiny-resnet", 1),
        ("tiny-resnet", 2),
        ("tiny-llama", 1),
        ("tiny-llama", 2),
    ]
    for result in results:
        llm = result["model"] == "tiny-llama"
        assert result["ours_qps"] > 0 and result["ours"].startswith("ours (transformers " if llm else "ours (eager ")
        peers = {"transformers generate() BF16"} if llm else {"PyTorch eager FP16", "ByteMLPerf CUDA method"}
        assert set(result["peers"]) == peers
        assert all(peer["qps"] > 0 for peer in result["peers"].values())
        assert result["roofline"] > 0
    # The LLM is served and compared in decode tokens/s: batch x 1000 / TPOT, ours and generate()'s.
    llm = results[-1]
    assert llm["kind"] == "llm" and llm["ours_qps"] == pytest.approx(2e3 / llm["ours_tpot_ms"])
    peer = llm["peers"]["transformers generate() BF16"]
    assert peer["qps"] == pytest.approx(2e3 / peer["tpot_ms"]) and peer["ttft_ms"] > 0
    assert any(line.startswith("tiny-llama bs   2: ours (transformers BF16) TTFT ") for line in lines)
    # The product's own report of each model was written on the GPU backend.
    assert (out / "reports" / "GPU" / "tiny-bert-squad" / "result-fp32.json").is_file()
    assert (out / "reports" / "GPU" / "tiny-llama-torch-fp32" / "result-fp32.json").is_file()


def test_without_pydantic_or_wheels_it_says_how_to_get_them(tmp_path):
    run = run_as_gpu_host(tmp_path, "--device", "cpu", "--tiny", absent=(*ABSENT, "pydantic"))
    assert run.returncode == 1
    assert "make gpu-wheels" in run.stderr and "--wheels" in run.stderr and "Traceback" not in run.stderr


def test_the_wheels_asked_for_are_the_tested_versions():
    sys.path.insert(0, str(CHECK.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(CHECK.parent))
    pins = gpu_check.constraint_pins()
    assert all(name in pins for name in gpu_check.WHEELS)  # each wheel has a pin in constraints.txt
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert " ".join(gpu_check.WHEELS) in makefile  # make gpu-wheels downloads exactly these


def test_the_plan_needs_no_device_and_keeps_batch_sizes_within_each_model(tmp_path):
    run = subprocess.run([sys.executable, str(CHECK), "--plan"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    # One LLM, first (the budget never skips it), served on the GPU backend against plain generate().
    assert lines[0].strip().startswith("llama3.2: llama3.2-torch-bf16-1b, batch sizes [1, 4]; ours: transformers BF16")
    assert "peers: transformers generate() BF16;" in lines[0]
    assert "resnet50-torch-fp32, batch sizes [1, 64]" in lines[5]  # its entry allows 64, not 256
    assert lines[2].count("torch.compile FP16") == 1 and "torch.compile" not in lines[1]  # bert only, by default
    assert all("ours: eager FP16, cuda-graph FP16" in line for line in lines[1:6])
    total = float(lines[-1].split("~")[1].split()[0])
    assert total <= 8.0  # the default plan fits the device's minutes


def test_a_killed_check_resumes_and_a_failed_model_exits_1(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = {
        "model": "tiny-bert",
        "bs": 1,
        "ours": "ours (eager FP16)",
        "ours_qps": 1.0,
        "ours_precision": "FP16",
        "ours_energy_j": None,
        "ours_device_ms": None,
        "peers": {},
        "roofline": 0.1,
    }
    (out / "gpu_check.json").write_text(json.dumps({"results": [done]}), encoding="utf-8")
    models = ("--models", "tiny-bert,tiny-resnet")
    run = run_as_gpu_host(tmp_path, "--device", "cpu", "--tiny", "--no-compile", *models, "--out", str(out), "--resume")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed: tiny-bert" in run.stdout
    models = [r["model"] for r in json.loads((out / "gpu_check.json").read_text(encoding="utf-8"))["results"]]
    assert models == ["tiny-bert", "tiny-resnet", "tiny-resnet"]  # tiny-bert kept, not measured again
    failing = run_as_gpu_host(
        tmp_path,
        "--device",
        "cpu",
        "--tiny",
        "--no-compile",
        "--models",
        "tiny-bert",
        "--precisions",
        "FP64",
        "--out",
        str(tmp_path / "bad"),
    )
    assert failing.returncode == 1 and "tiny-bert: failed" in failing.stdout


def test_the_probe_lists_its_checks_without_a_device():
    probe = ROOT / "benchmarks" / "gpu_probe.py"
    run = subprocess.run([sys.executable, str(probe), "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    checks = run.stdout.splitlines()
    assert len(checks) == 14 and sum(line.startswith("capture ") for line in checks) == 8
    assert any("DeBERTa-base forward at BF16" in line for line in checks)
