/* cpuid_mask.c: run a program as if the CPU had no AVX-512 (an "AVX2-only box"), on an AVX-512 one.
 *
 * Built and preloaded by tools/as_avx2.sh (read it first). Loaded with LD_PRELOAD, it turns on
 * CPUID faulting for the process (Linux arch_prctl(ARCH_SET_CPUID, 0): the CPU must offer
 * `cpuid_fault` in /proc/cpuinfo); every CPUID instruction then traps to the SIGSEGV handler
 * below, which runs the real CPUID with faulting briefly off and clears the AVX-512 feature bits
 * (leaf 7: AVX512F/DQ/IFMA/PF/ER/CD/BW/VL, VBMI/VBMI2/VNNI/BITALG/VPOPCNTDQ, 4VNNIW/4FMAPS/
 * VP2INTERSECT/FP16; leaf 7.1: AVX-VNNI, AVX512_BF16; leaf 0xD: the three AVX-512 state
 * components). Threads inherit the setting; new processes inherit LD_PRELOAD and set it again.
 * A SIGSEGV handler installed later (Python's faulthandler, pytest) does not replace this one:
 * sigaction() and signal() are wrapped so that it is chained behind it and still gets real faults.
 * Libraries that pick kernels by CPUID (XNNPACK through cpuinfo, ONNX Runtime's MLAS, OpenCV,
 * oneDNN, NumPy) then take their AVX2 paths. The microarchitecture stays the host's: this checks
 * code paths and their relative cost, not another box's absolute speed.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static struct sigaction previous; /* the handler a real fault goes to */
static sigaction_fn real_sigaction;
static int installed;

static sigaction_fn the_real_sigaction(void)
{
    if (!real_sigaction)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    return real_sigaction;
}

/* Others' SIGSEGV handlers queue behind ours; every other signal passes straight through. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig != SIGSEGV || !installed)
        return the_real_sigaction()(sig, act, old);
    if (old)
        *old = previous;
    if (act)
        previous = *act;
    return 0;
}

sighandler_t signal(int sig, sighandler_t handler)
{
    struct sigaction act, old;
    if (sig != SIGSEGV || !installed) {
        sighandler_t (*real_signal)(int, sighandler_t) = (sighandler_t(*)(int, sighandler_t))dlsym(RTLD_NEXT, "signal");
        return real_signal(sig, handler);
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

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
    } else { /* a real fault: returning re-runs it and the default action ends us */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        the_real_sigaction()(SIGSEGV, &dfl, NULL);
    }
}

__attribute__((constructor)) static void mask_cpuid(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_segv;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    if (the_real_sigaction()(SIGSEGV, &action, &previous) != 0 ||
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "cpuid_mask: CPUID faulting is not available here (no cpuid_fault)\n");
        _exit(3);
    }
    installed = 1;
}
