#!/usr/bin/env bash
# Make .venv ready for the Makefile and say what was done: reuse a working .venv (made by make or by hand),
# torch's CPU build from PyTorch's CPU index where it can be reached, then the tested versions of the rest.
# Environment: PYTHON (makes a new .venv), VENV, TORCH_INDEX (empty: torch from the default index).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${VENV:-.venv}
torch_index=${TORCH_INDEX-https://download.pytorch.org/whl/cpu}
minimum=3.11 # constraints.txt pins numpy 2.4.6, scipy 1.17.1, onnxruntime 1.31.1: none has a build for 3.10
pin=$(sed -n 's/^torch==//p' constraints.txt)

too_old() { ! "$1" -c "import sys; sys.exit(sys.version_info < (${minimum/./, }))" 2>/dev/null; }

if "$venv/bin/python" -c "" 2>/dev/null; then
  echo "venv: using the existing $venv ($("$venv/bin/python" -V)), installing into it"
else
  [ -e "$venv" ] && echo "venv: $venv/bin/python does not run: making $venv again with $python"
  if ! command -v "$python" >/dev/null || too_old "$python"; then
    echo "error: $python is missing or older than Python $minimum; fix: make PYTHON=python3.11 (or newer)" >&2
    exit 2
  fi
  "$python" -m venv --clear "$venv"
  echo "venv: made $venv with $("$venv/bin/python" -V)"
fi
if too_old "$venv/bin/python"; then
  echo "error: $venv is $("$venv/bin/python" -V), older than $minimum; fix: make clean-venv, then make PYTHON=python3.11" >&2
  exit 2
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
# Within 8 s, name lookup included (a socket timeout does not bound DNS): a closed network costs no more.
reachable() {
  "$venv/bin/python" -c "import sys, threading, urllib.request as request
answered = []
probe = threading.Thread(target=lambda: answered.append(request.urlopen(sys.argv[1], timeout=5)), daemon=True)
probe.start()
probe.join(8)
sys.exit(0 if answered else 1)" "$1" 2>/dev/null
}
installed() { "$venv/bin/python" -c "from importlib.metadata import version; print(version('torch'))" 2>/dev/null; }
have=$(installed || true)
if [ "${have%%+*}" = "$pin" ]; then
  echo "torch: $have already installed, kept"
elif [ -z "$torch_index" ]; then
  echo "torch: TORCH_INDEX is empty: torch $pin from the default index"
elif reachable "${torch_index%/}/torch/" && "${pip[@]}" install --no-deps --timeout 15 --retries 1 \
  --index-url "$torch_index" "torch==$pin"; then
  echo "torch: $(installed) from $torch_index"
else
  echo "torch: $torch_index cannot be reached: torch $pin comes from the default index" \
    "(on Linux x86_64 PyPI's is the CUDA build, several GB more; set TORCH_INDEX to another index)"
fi
"${pip[@]}" install -e ".[dev]" -c constraints.txt
echo "venv: $venv ready: torch $(installed), tested versions from constraints.txt"
