#!/usr/bin/env bash
# Install vvbench and its dependencies into the current Python environment.
#
#   bash scripts/install.sh          # the tool
#   bash scripts/install.sh test     # the tool plus what the tests need
#
# An already-installed torch is kept. Without one, a machine with no NVIDIA GPU gets a CPU
# build of torch (a local wheel if pip can find one, else PyTorch's CPU index), so that no
# multi-GB CUDA wheels are pulled; a machine with a GPU gets the default build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extra=${1:-}

if "$PY" -c "import torch" 2>/dev/null; then
  echo "install: keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$PY" -m pip install "torch>=2.4"
else
  TORCH_VERSION=${VVBENCH_TORCH_VERSION:-2.13.0}
  # The CPU build from what pip already sees (a local wheel or a mirror; its dependencies from the
  # configured index), else PyTorch's CPU index. Not `--no-index`: torch's own dependencies are
  # rarely local, so that attempt failed and sent every package to the CPU index, retried per
  # package where that index is unreachable (minutes of a fresh install).
  "$PY" -m pip install "torch==${TORCH_VERSION}+cpu" 2>/dev/null \
    || "$PY" -m pip install "torch==${TORCH_VERSION}" --index-url "${VVBENCH_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
fi

if [ "$extra" = "test" ]; then
  # Real speech and audio tools for the audio-check tests, promtool for the metrics tests,
  # headless Chromium and its driver for the HTML report tests, tcpdump for the independent clock
  # of the timing tests (they skip where capture is not permitted).
  need=()
  command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
  command -v sox >/dev/null 2>&1 || need+=(sox)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || echo "install: could not install ${need[*]}; the tests that need them will be skipped"
  fi
  "$PY" -m pip install -e ".[test]"
else
  "$PY" -m pip install -e .
fi
# pyenv and similar shims only see new console scripts after a rehash.
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
