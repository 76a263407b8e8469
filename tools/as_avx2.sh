#!/usr/bin/env bash
# Run a command as if this x86-64 CPU had no AVX-512 (AVX2, FMA, F16C and older only):
#
#     bash tools/as_avx2.sh python benchmarks/compare_fer.py --rounds 3 ...
#
# For issue 27's "AVX2-only box" on a box with AVX-512: tools/cpuid_mask.c (preloaded; it
# needs `cpuid_fault` in /proc/cpuinfo) hides AVX-512 from every CPUID, so XNNPACK, ONNX Runtime,
# OpenCV, oneDNN and NumPy take their AVX2 kernels; GLIBC_TUNABLES does the same for glibc's own
# string functions, which choose before any preload runs. EDGE_FER_HIDDEN_CPU_FLAGS tells
# edge-fer's machine report (doctor, benchmark JSON) which /proc/cpuinfo flags are hidden.
# The host's microarchitecture stays: compare code paths side by side, not boxes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! grep -qw cpuid_fault /proc/cpuinfo; then
    echo "as_avx2.sh: this CPU/kernel offers no CPUID faulting (cpuid_fault), so AVX-512 cannot be hidden" >&2
    exit 2
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/edge-fer"
lib="$cache/cpuid_mask.so"
if [[ ! -f "$lib" || "$here/cpuid_mask.c" -nt "$lib" ]]; then
    mkdir -p "$cache"
    cc -O2 -shared -fPIC -o "$lib.tmp" "$here/cpuid_mask.c" -ldl
    mv "$lib.tmp" "$lib"
fi
hidden="avx512f avx512dq avx512ifma avx512pf avx512er avx512cd avx512bw avx512vl avx512vbmi avx512_vbmi2"
hidden+=" avx512_vnni avx512_bitalg avx512_vpopcntdq avx512_4vnniw avx512_4fmaps avx512_vp2intersect"
hidden+=" avx512_fp16 avx_vnni avx512_bf16"
export EDGE_FER_HIDDEN_CPU_FLAGS="$hidden"
export GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
export LD_PRELOAD="$lib${LD_PRELOAD:+ $LD_PRELOAD}"
exec "$@"
