#!/usr/bin/env bash
# Run the lean runtime on aarch64 (Debian arm64 roots under qemu-user) and compare it with x86.
#
#   sudo tools/check_aarch64.sh                      # both roots: bookworm (Python 3.11), bullseye (3.9)
#   sudo tools/check_aarch64.sh --suite bullseye     # one root
#   tools/check_aarch64.sh --help
#
# For each root it: builds or reuses a cached arm64 root OUTSIDE the repo ($EDGE_FER_AARCH64_CACHE,
# default /var/cache/edge-fer/aarch64/<suite>, made with debootstrap --variant=minbase); builds the
# wheel from this checkout (pip wheel --no-deps); installs it in a venv in the root with its
# declared (lean) dependencies only, --only-binary=:all:; runs, on aarch64 and then on x86 (.venv):
# (x86: the same wheel's code, unpacked, with .venv's Python and dependencies):
# edge-fer --version, doctor --json, run --demo with the TFLite model and each shipped detector,
# five frames of media/woman2.mp4 per detector, and bad-input rows; and prints a Markdown table
# comparing them (same faces; boxes within 2 px; same top-1; scores within 0.02).
#
# Needs root (chroot, mounts), debootstrap and qemu-user-static (apt-get install debootstrap
# qemu-user-static), and binfmt_misc with qemu-aarch64 registered with the F flag (the script
# mounts and registers it when it can). ONNX Runtime is installed (a declared dependency) but
# not exercised beyond doctor's provider listing: under emulation it is ~15 s per frame.
# Everything emulated runs under nice -n 19. Emulated runs check behaviour, never speed.
#
# Exit: 0 all rows match; 1 a mismatch; 2 usage or a failed step; 77 cannot run here (not
# root, no qemu/binfmt/debootstrap): tests/test_aarch64.py skips on 77.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${EDGE_FER_AARCH64_CACHE:-/var/cache/edge-fer/aarch64}
SHARED=${EDGE_FER_SHARED:-$REPO/../shared}
MEDIA=$SHARED/data/media
PY_X86=${EDGE_FER_PYTHON:-$REPO/.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-}  # default: the Debian mirror this machine's apt uses (apt_mirror)
OUT=""
SUITES=()
FRESH=0
NICE=(nice -n 19)
QEMU=/usr/bin/qemu-aarch64-static
MOUNTED=()

usage() { sed -n '2,/^set -euo/{/^set -euo/d;p;}' "$0" | sed 's/^# \{0,1\}//'; echo
          echo "options: --suite bookworm|bullseye (repeatable; default both), --out DIR (results),"
          echo "         --fresh (recreate the venv inside each root)"; }
say() { echo "check_aarch64: $*" >&2; }
cannot() { say "cannot run here: $*"; exit 77; }
fail() { say "error: $*"; exit 2; }
# The first Debian archive (a URI ending in /debian) in this machine's apt sources, else nothing.
apt_mirror() {
    grep -rhoE '^(deb( +\[[^]]*\])?|URIs:) +[a-z]+://[^ ]+/debian/?( |$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | awk '{print $NF}' | head -n 1
}

while [ $# -gt 0 ]; do
    case $1 in
        --suite) SUITES+=("$2"); shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --fresh) FRESH=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown argument: $1" ;;
    esac
done
[ ${#SUITES[@]} -gt 0 ] || SUITES=(bookworm bullseye)
for s in "${SUITES[@]}"; do case $s in bookworm|bullseye) ;; *) fail "--suite must be bookworm or bullseye, got '$s'" ;; esac; done
OUT=${OUT:-$(mktemp -d /tmp/edge-fer-aarch64.XXXXXX)}
mkdir -p "$OUT"

# --- preflight ---------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || cannot "needs root (chroot and bind mounts)"
[ -x "$PY_X86" ] || cannot "no x86 Python at $PY_X86 (set EDGE_FER_PYTHON)"
[ -f "$MEDIA/woman2.mp4" ] || cannot "no $MEDIA/woman2.mp4 (set EDGE_FER_SHARED)"
if [ "$(uname -m)" != aarch64 ]; then
    [ -x "$QEMU" ] || cannot "no $QEMU (apt-get install qemu-user-static)"
    BINFMT=/proc/sys/fs/binfmt_misc
    if [ ! -e "$BINFMT/register" ]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || cannot "binfmt_misc cannot be mounted"
    fi
    if ! grep -qs '^flags: .*F' "$BINFMT/qemu-aarch64"; then
        [ -e "$BINFMT/qemu-aarch64" ] && echo -1 > "$BINFMT/qemu-aarch64"   # registered without F
        printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':F' \
            > "$BINFMT/register" 2>/dev/null || cannot "qemu-aarch64 cannot be registered in binfmt_misc"
    fi
    grep -qs '^enabled' "$BINFMT/qemu-aarch64" || cannot "qemu-aarch64 binfmt entry is disabled"
fi

cleanup() {
    local i
    for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
    MOUNTED=()
}
trap cleanup EXIT INT TERM

bind() {  # bind SRC DEST [ro]: private, so nothing mounted below it reaches the host's tree
    mkdir -p "$2"
    mount --bind "$1" "$2"
    MOUNTED+=("$2")
    mount --make-private "$2"
    if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

# qemu-user shows the x86 host's /proc/cpuinfo to the arm64 programs. The cpuinfo library inside
# ai-edge-litert 2.3.0 then crashes (SIGSEGV) creating an Interpreter when /sys lists the CPUs,
# and ONNX Runtime 1.19 aborts when /sys is absent. So the root gets its own /proc with an arm64
# cpuinfo (one entry per host CPU) describing the CPU qemu emulates, QEMU_CPU=neoverse-n1
# (ARMv8.2-A + dotprod, the ISA level of a Jetson Orin's Cortex-A78AE).
EMULATED_CPU=neoverse-n1
mount_proc() {  # mount_proc ROOT
    local i n
    mkdir -p "$1/proc"
    mount -t proc proc "$1/proc"
    MOUNTED+=("$1/proc")
    mount --make-private "$1/proc"
    [ "$(uname -m)" = aarch64 ] && return
    n=$(nproc --all); : > "$OUT/cpuinfo"
    for (( i=0; i<n; i++ )); do
        printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i" >> "$OUT/cpuinfo"
    done
    mount --bind "$OUT/cpuinfo" "$1/proc/cpuinfo"
    MOUNTED+=("$1/proc/cpuinfo")
}

ensure_root() {  # ensure_root SUITE -> the root's path on stdout
    local suite=$1 root=$CACHE/$1
    if [ ! -x "$root/usr/bin/python3" ]; then
        command -v debootstrap >/dev/null || cannot "no debootstrap (apt-get install debootstrap) and no cached $root"
        [ -n "$MIRROR" ] || MIRROR=$(apt_mirror)
        [ -n "$MIRROR" ] || fail "no Debian mirror in this machine's apt sources: set DEBIAN_MIRROR=URL"
        say "building $root with debootstrap from $MIRROR (minutes; log $CACHE/$suite.log)"
        mkdir -p "$CACHE"
        rm -rf "$root.tmp"
        "${NICE[@]}" debootstrap --arch=arm64 --variant=minbase \
            --include=python3,python3-venv,python3-pip,ca-certificates "$suite" "$root.tmp" "$MIRROR" \
            > "$CACHE/$suite.log" 2>&1 || fail "debootstrap $suite failed: see $CACHE/$suite.log"
        mv "$root.tmp" "$root"
    fi
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    # This host's CA bundle (it may add a proxy's CA), for pip in the root: PIP_CERT in in_root.
    cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/edge-fer-host-ca.crt" 2>/dev/null || true
    echo "$root"
}

in_root() {  # in_root ROOT CMD...: run in the arm64 root, clean environment, niced
    local root=$1; shift
    local extra=()
    [ -s "$root/etc/edge-fer-host-ca.crt" ] && extra=(PIP_CERT=/etc/edge-fer-host-ca.crt)
    [ "$(uname -m)" = aarch64 ] || extra+=(QEMU_CPU=$EMULATED_CPU)
    "${NICE[@]}" chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 OMP_NUM_THREADS=1 "${extra[@]}" \
        PATH=/opt/edge-fer/bin:/usr/local/bin:/usr/bin:/bin "$@"
}

# --- the wheel, from this checkout ------------------------------------------------------------
WHEELS=$OUT/wheel
rm -rf "$WHEELS"; mkdir -p "$WHEELS"
say "building the wheel from $REPO"
# From a copy of the checkout (tracked and untracked, not ignored, files): no build/ in the repo,
# and two runs (or other people's builds) never share one.
SRC=$OUT/src
rm -rf "$SRC"; mkdir -p "$SRC"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
    | tar -xf - -C "$SRC"
"${NICE[@]}" "$PY_X86" -m pip wheel --quiet --no-deps --no-build-isolation --disable-pip-version-check \
    -w "$WHEELS" "$SRC" > "$OUT/wheel.log" 2>&1 || fail "pip wheel failed: see $OUT/wheel.log"
WHEEL=$(ls "$WHEELS"/edge_fer-*.whl)
# x86 runs the very same code: the wheel unpacked ahead of .venv's edge-fer on PYTHONPATH (the
# checkout may change while the emulated runs take their minutes), .venv's dependencies.
X86_SITE=$OUT/x86-site
rm -rf "$X86_SITE"
"$PY_X86" -m zipfile -e "$WHEEL" "$X86_SITE"
GIT_REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

# --- the cases: name<TAB>arguments; @MODELS@ @MEDIA@ @TMP@ are set per side -----------------
cases_file() {  # cases_file DETECTORS... -> the case table on stdout
    local det
    printf 'version\t--version\n'
    printf 'doctor\tdoctor --json --models @TMP@/models --cameras 0\n'
    for det in "$@"; do
        printf 'demo-%s\trun --demo --headless --json --model @MODELS@/edgenet_fer2013_int8.tflite --detector %s\n' "$det" "$det"
    done
    for det in "$@"; do
        printf 'video-%s\trun --video @MEDIA@/woman2.mp4 --max-frames 5 --headless --json --model @MODELS@/edgenet_fer2013_int8.tflite --detector %s\n' "$det" "$det"
    done
    for det in "$@"; do  # the same 5 frames, decoded once on x86 and saved lossless: no decoder in the way
        printf 'frames-%s\trun --image @TMP@/frames --headless --json --model @MODELS@/edgenet_fer2013_int8.tflite --detector %s\n' "$det" "$det"
    done
    printf 'bad-model-missing\trun --demo --headless --json --model @TMP@/missing.tflite\n'
    printf 'bad-model-garbage\trun --demo --headless --json --model @TMP@/garbage.tflite\n'
    printf 'bad-video-missing\trun --headless --json --video @TMP@/missing.mp4\n'
    printf 'bad-video-garbage\trun --headless --json --video @TMP@/garbage.mp4\n'
    printf 'bad-detector\trun --demo --headless --json --detector nope\n'
    printf 'bad-smooth\trun --demo --headless --json --smooth 1.5\n'
    printf 'bad-two-sources\trun --demo --headless --json --video @MEDIA@/woman2.mp4\n'
    printf 'bad-image-folder\trun --headless --json --image @TMP@/empty\n'
}

# The first frames of the video as each side's OpenCV/FFmpeg decodes them, saved as PNG (lossless).
DECODE='import sys, cv2
capture = cv2.VideoCapture(sys.argv[1])
for i in range(int(sys.argv[3])):
    ok, frame = capture.read()
    assert ok, f"frame {i} did not decode"
    assert cv2.imwrite(f"{sys.argv[2]}/{i:03d}.png", frame)'

make_tmp() {  # make_tmp HOSTDIR MODELS_DIR: bad inputs, the doctor models folder, the x86 frames
    rm -rf "$1"; mkdir -p "$1/models" "$1/empty" "$1/decoded"
    cp -r "$OUT/frames" "$1/frames"
    cp "$2/edgenet_fer2013_int8.tflite" "$1/models/"
    head -c 4096 /dev/urandom > "$1/garbage.tflite"
    printf 'not a video\n' > "$1/garbage.mp4"
}

run_cases() {  # run_cases SIDE CASES MODELS MEDIA TMP RUNNER...: SIDE/<case>.{out,err,rc}
    local side=$1 cases=$2 models=$3 media=$4 tmp=$5; shift 5
    local name args rc
    mkdir -p "$OUT/$side"
    printf '%s\t%s\t%s\n' "$models" "$media" "$tmp" > "$OUT/$side/paths.tsv"
    while IFS=$'\t' read -r name args; do
        args=${args//@MODELS@/$models}; args=${args//@MEDIA@/$media}; args=${args//@TMP@/$tmp}
        say "$side: edge-fer $args"
        rc=0
        # shellcheck disable=SC2086  # the arguments hold no spaces
        "$@" edge-fer $args > "$OUT/$side/$name.out" 2> "$OUT/$side/$name.err" < /dev/null || rc=$?
        echo "$rc" > "$OUT/$side/$name.rc"
    done < "$cases"
}

x86_runner() { (cd "$OUT" && "${NICE[@]}" env -u EDGE_FER_DETECTORS PYTHONPATH="$X86_SITE" \
                   PATH="$(dirname "$PY_X86"):$PATH" "$@"); }

# --- each root ---------------------------------------------------------------------------------
rm -rf "$OUT/frames"; mkdir -p "$OUT/frames"
"${NICE[@]}" "$PY_X86" -c "$DECODE" "$MEDIA/woman2.mp4" "$OUT/frames" 5 || fail "cannot decode $MEDIA/woman2.mp4 on x86"
STATUS=0
X86_DONE=""
for suite in "${SUITES[@]}"; do
    root=$(ensure_root "$suite")
    side=aarch64-$suite
    mount_proc "$root"; bind /sys "$root/sys"; bind /dev "$root/dev"
    bind "$MEDIA" "$root/tmp/media" ro
    if [ "$FRESH" = 1 ] || [ ! -x "$root/opt/edge-fer/bin/python" ]; then
        rm -rf "$root/opt/edge-fer"
        in_root "$root" python3 -m venv /opt/edge-fer || fail "venv in $root failed"
    fi
    mkdir -p "$root/tmp/edge-fer-wheel"; rm -f "$root"/tmp/edge-fer-wheel/*.whl
    cp "$WHEEL" "$root/tmp/edge-fer-wheel/"
    rwheel=/tmp/edge-fer-wheel/$(basename "$WHEEL")
    say "$side: pip install $(basename "$WHEEL") --only-binary=:all: (lean dependencies)"
    start=$(date +%s)
    { in_root "$root" pip install --disable-pip-version-check --only-binary=:all: "$rwheel" &&
      in_root "$root" pip install --disable-pip-version-check --only-binary=:all: --no-deps --force-reinstall "$rwheel"; } \
        > "$OUT/$side-install.log" 2>&1 || fail "pip install in $root failed: see $OUT/$side-install.log"
    echo $(( $(date +%s) - start )) > "$OUT/$side-install.seconds"
    in_root "$root" pip list --format=json --disable-pip-version-check > "$OUT/$side-pip.json" 2>/dev/null
    in_root "$root" python -c 'import platform, sys; print(platform.machine(), sys.version.split()[0])' > "$OUT/$side-python.txt"
    rmodels=$(in_root "$root" python -c 'import edge_fer, os; print(os.path.join(os.path.dirname(edge_fer.__file__), "models"))')
    read -r -a detectors < <(in_root "$root" python -c '
try:
    from edge_fer.detectors.shipped import shipped_detectors
    names = shipped_detectors()
except ImportError:
    names = ()
print(" ".join(dict.fromkeys(("haar",) + tuple(names))))')
    say "$side: detectors haar + shipped: ${detectors[*]}"
    cases=$OUT/cases-$suite.tsv
    cases_file "${detectors[@]}" > "$cases"
    make_tmp "$root/tmp/edge-fer-check" "$root$rmodels"
    start=$(date +%s)
    run_cases "$side" "$cases" "$rmodels" /tmp/media /tmp/edge-fer-check in_root "$root"
    in_root "$root" python -c "$DECODE" /tmp/media/woman2.mp4 /tmp/edge-fer-check/decoded 5 \
        && cp -r "$root/tmp/edge-fer-check/decoded" "$OUT/$side/decoded"
    echo $(( $(date +%s) - start )) > "$OUT/$side-run.seconds"
    cleanup
    if [ "$X86_DONE" != "${detectors[*]}" ]; then   # x86 once per distinct case table
        make_tmp "$OUT/x86-tmp" "$X86_SITE/edge_fer/models"
        run_cases x86 "$cases" "$X86_SITE/edge_fer/models" "$MEDIA" "$OUT/x86-tmp" x86_runner
        rm -rf "$OUT/x86/decoded"; cp -r "$OUT/frames" "$OUT/x86/decoded"
        X86_DONE="${detectors[*]}"
    fi
    rc=0
    "$PY_X86" "$REPO/tools/compare_aarch64.py" "$OUT" "$side" --wheel "$(basename "$WHEEL")" --rev "$GIT_REV" \
        --cases "$cases" > "$OUT/table-$suite.md" || rc=$?
    cat "$OUT/table-$suite.md"
    [ "$rc" = 0 ] || STATUS=1
done
say "results in $OUT"
exit $STATUS
