#!/usr/bin/env bash
# The checks that need a GPU, in one go: the CUDA tests and the CUDA figures of every benchmark.
# Each output is printed and kept in OUTDIR (default _build/gpu); record the figures in RESULTS.md.
#
#     tests/benchmarks/gpu.sh [OUTDIR]          (PYTHON=... to choose the interpreter)
#
# `make bench-gpu` runs it from the book's environment.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$root/_build/gpu}" && cd "${1:-$root/_build/gpu}" && pwd)
py=${PYTHON:-python3}
export PYTHONPATH="$root:$root/tests/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 ASRLIB_PROGRESS=0
cd "$root"
status=0
step() {  # step NAME COMMAND...: run, show and keep the output; remember a failure, go on
    local name=$1; shift
    echo "### $name: $*" | tee "$out/$name.txt"
    "$@" 2>&1 | tee -a "$out/$name.txt" || { status=1; echo "### $name FAILED" | tee -a "$out/$name.txt"; }
}
step device "$py" -c "import torch; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version())"
step tests "$py" -m pytest -m cuda -p no:cacheprovider -q tests/test_cuda.py tests/test_ctc.py tests/test_transducer.py tests/test_runtime.py
step lstm "$py" tests/benchmarks/bench_lstm.py --device cuda --repeats 9 --cuda-graph
step lstm-batch64 "$py" tests/benchmarks/bench_lstm.py --device cuda --repeats 9 --batch 64
step ctc "$py" tests/benchmarks/bench_ctc.py --device cuda --loss-only
step rnnt "$py" tests/benchmarks/bench_rnnt.py --device cuda
step transducer-decode "$py" tests/benchmarks/bench_transducer_decode.py --device cuda --utterances 2
exit $status
