/* cpuid_mask.c: run a program as if the CPU had no AVX-512 (an "AVX2-only box"), on an AVX-512 one.
 *
 * Built and preloaded by tools/as_avx2.sh (read it first). Loaded with LD_PRELOAD, it turns on
 * CPUID faulting for the process (Linux arch_prctl(ARCH_SET_CPUID, 0): the CPU must offer
 * `cpuid_fault` in /proc/cpuinfo); every CPUID instruction then traps to the SIGSEGV handler
 * below, which runs the real CPUID with faulting briefly off and clears the AVX-512 feature bits
 * (leaf 7: AVX512F/DQ/IFMA/PF/ER/CD/BW/VL, VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ, 4VNNIW/4FMAPS/
 * VP2INTERSECT/FP16; leaf 7.1: AVX-VNNI, AVX512_BF16; leaf 0xD: the three AVX-512 state
 * components). Threads inherit the setting; new processes inherit LD_PRELOAD and set it again.
 * Libraries that pick kernels by CPUID (XNNPACK through cpuinfo, ONNX Runtime's MLAS, OpenCV,
 * oneDNN, NumPy) then take their AVX2 paths. The microarchitecture stays the host's: this checks
 * code paths and their relative cost, not another box's absolute speed.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012

static struct sigaction previous;

static void masked_cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    if (leaf == 7 && sub == 0) {
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                  (1u << 30) | (1u << 31));
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
    } else if (leaf == 7 && sub == 1) {
        r[0] &= ~((1u << 4) | (1u << 5));
    } else if (leaf == 0xD && sub == 0) {
        r[0] &= ~(7u << 5);
    }
}

static void on_segv(int sig, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (info->si_code == SI_KERNEL && ip[0] == 0x0f && ip[1] == 0xa2) {
        uint32_t r[4];
        masked_cpuid((uint32_t)g[REG_RAX], (uint32_t)g[REG_RCX], r);
        g[REG_RAX] = r[0];
        g[REG_RBX] = r[1];
        g[REG_RCX] = r[2];
        g[REG_RDX] = r[3];
        g[REG_RIP] += 2;
        return;
    }
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL); /* a real fault: returning re-runs it and the default ends us */
    }
}

__attribute__((constructor)) static void mask_cpuid(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGSEGV, &action, &previous) != 0 || syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "cpuid_mask: CPUID faulting is not available here (no cpuid_fault)\n");
        _exit(3);
    }
}
