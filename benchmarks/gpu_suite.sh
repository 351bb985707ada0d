#!/usr/bin/env bash
# The GPU test suite and the kernel benchmark tables, in one run on the lent GPU.
#
# From the worktree root, here (copies the tree and the Triton reference next to the lead's checkout):
#     rm -rf /work/main/.device/kernels; mkdir -p /work/main/.device/kernels
#     git ls-files -co --exclude-standard | tar cf - -T - | tar xf - -C /work/main/.device/kernels
#     bash benchmarks/fetch_mamba_triton.sh /work/main/.device/kernels/_vendor
# then through the device tool: run(command="cd .device/kernels && bash benchmarks/gpu_suite.sh",
# carry=[".device/kernels"], timeout_s=600). Everything is also written to $OUT/log.
# `--tests-only` runs only `pytest -m gpu` (every test file that holds a GPU test), in 6 pytest
# workers sharing the GPU (no preallocation): 27 tests in 93 s on the H200 in session 8 (the
# compiles dominate; one worker did not finish them in 70-100 s caps in session 5); session 10:
# 32 tests, 23 done in a 115 s cap with 8 workers on an H100. `-v` names each test as it ends
# (with -q, a cap leaves only dots). Triton's SSD autotuning (forward and backward) takes minutes
# on a fresh machine: FUSED_ARGS="--triton-forward-only ..." times its forward alone.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/_vendor:$PWD${PYTHONPATH:+:$PYTHONPATH}"
log=${OUT:-/tmp}/log
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import jax, triton; print('jax', jax.__version__, 'triton', triton.__version__, jax.devices())"
    XLA_PYTHON_CLIENT_PREALLOCATE=false python3 -m pytest -v --tb=short -m gpu -n "${GPU_TEST_WORKERS:-6}" \
        -p no:cacheprovider $(grep -l "pytest.mark.gpu" tests/test_*.py)
    if [ "${1:-}" != "--tests-only" ]; then
        cd benchmarks
        python3 selective_fused.py ${SELECTIVE_ARGS:-}
        python3 scan_pallas.py --sizes 1048576 --grad --chunked-max-T 0 --dtypes float32 bfloat16 ${SCAN_ARGS:-}
        python3 ssd_profile.py ${PROFILE_ARGS:-}
        python3 ssd_chunk_sweep.py ${SSD_ARGS:-}
        python3 ssd_fused.py ${FUSED_ARGS:-}
        python3 mosaic_probe.py
    fi
} 2>&1 | tee "$log"
