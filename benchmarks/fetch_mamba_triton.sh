#!/usr/bin/env bash
# Bring the official Mamba-2 Triton SSD kernel (mamba_ssm, Apache-2.0) into a git-ignored folder,
# so that benchmarks/ssd_vs_triton.py and benchmarks/selective_fused.py can run it beside ours.
#
# Only the pure-Python Triton files are kept (mamba_ssm/ops/triton, mamba_ssm/utils) with
# empty package __init__ files: mamba_ssm's compiled CUDA extensions are not built. The
# selective-scan module is kept with its CUDA import removed, for its pure-PyTorch
# `selective_scan_ref`. Run here (where PyPI is reachable), then carry the folder to the GPU:
#
#     bash benchmarks/fetch_mamba_triton.sh .device/kernels/_vendor     # -> _vendor/mamba_ssm
#     # on the GPU: PYTHONPATH=_vendor:. python3 benchmarks/ssd_vs_triton.py
set -euo pipefail
dest=${1:?usage: fetch_mamba_triton.sh DEST_DIR}
version=${MAMBA_SSM_VERSION:-2.3.2.post1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "mamba-ssm==$version" -d "$tmp" 2>/dev/null || true
if ! ls "$tmp"/mamba_ssm-*.tar.gz >/dev/null 2>&1; then  # pip tries to build metadata: fetch directly
    url=$(python3 -c "import json,urllib.request as u;d=json.load(u.urlopen('https://pypi.org/pypi/mamba-ssm/json'));print([f['url'] for f in d['releases']['$version'] if f['filename'].endswith('.tar.gz')][0])")
    curl -sSL "$url" -o "$tmp/mamba_ssm-$version.tar.gz"
fi
tar xzf "$tmp"/mamba_ssm-*.tar.gz -C "$tmp"
src=$(ls -d "$tmp"/mamba_ssm-*/mamba_ssm)
mkdir -p "$dest/mamba_ssm/ops/triton" "$dest/mamba_ssm/utils"
: >"$dest/mamba_ssm/__init__.py"
: >"$dest/mamba_ssm/ops/__init__.py"
cp "$src"/ops/triton/*.py "$dest/mamba_ssm/ops/triton/"
cp "$src"/utils/__init__.py "$src"/utils/torch.py "$src"/utils/determinism.py "$dest/mamba_ssm/utils/"
sed -e 's/^import selective_scan_cuda$/selective_scan_cuda = None/' \
    -e 's/^from mamba_ssm.ops.triton.layer_norm import .*$//' \
    "$src"/ops/selective_scan_interface.py >"$dest/mamba_ssm/ops/selective_scan_interface.py"
cp "$(dirname "$src")/LICENSE" "$dest/mamba_ssm/LICENSE" 2>/dev/null || true
echo "mamba_ssm $version Triton kernels in $dest/mamba_ssm"
