// Do the SHA-NI units run beside the AVX-512 vector ALUs? (issue 15)
//
//   gcc -O2 -o /tmp/sha-ports scripts/sha-ports-microbench.c && /tmp/sha-ports
//
// Times loops of hand-written instructions with rdtsc (x86-64 with AVX-512F and
// SHA; the SHA instructions are legacy-SSE encoded, so they use xmm0..15 and the
// vector work uses zmm16..25). Reports core cycles per loop iteration, from the
// TSC and a dependent chain of scalar adds (one per core cycle) run alongside.
// The best of 15 runs is kept, so a loaded machine shows its quiet moments.
//
// "ALU" is 32 vprold (port 0 only) and 32 vpaddd on eight independent zmm
// chains: saturating the two 512-bit ports, about 32 cycles. "quad" is one SHA-NI
// stream's four rounds and four schedule words as kiln's shani.rs issues them
// (msg1, alignr, add, msg2, add, rnds2, shuffle, rnds2). If the SHA units ran
// beside the vector ports, "2xALU + 2 quads" would cost what "2xALU" costs.
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

#define A8 "vpaddd %%zmm24, %%zmm16, %%zmm16\n vpaddd %%zmm24, %%zmm17, %%zmm17\n vpaddd %%zmm24, %%zmm18, %%zmm18\n vpaddd %%zmm24, %%zmm19, %%zmm19\n vpaddd %%zmm24, %%zmm20, %%zmm20\n vpaddd %%zmm24, %%zmm21, %%zmm21\n vpaddd %%zmm24, %%zmm22, %%zmm22\n vpaddd %%zmm24, %%zmm23, %%zmm23\n"
#define R8 "vprold $3, %%zmm16, %%zmm16\n vprold $3, %%zmm17, %%zmm17\n vprold $3, %%zmm18, %%zmm18\n vprold $3, %%zmm19, %%zmm19\n vprold $3, %%zmm20, %%zmm20\n vprold $3, %%zmm21, %%zmm21\n vprold $3, %%zmm22, %%zmm22\n vprold $3, %%zmm23, %%zmm23\n"
#define ALU R8 A8 R8 A8 R8 A8 R8 A8
#define G8 "add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n add %%rax, %%rdx\n"
#define S8 "sha256rnds2 %%xmm0, %%xmm15, %%xmm8\n sha256rnds2 %%xmm0, %%xmm15, %%xmm9\n sha256rnds2 %%xmm0, %%xmm15, %%xmm10\n sha256rnds2 %%xmm0, %%xmm15, %%xmm11\n sha256rnds2 %%xmm0, %%xmm15, %%xmm12\n sha256rnds2 %%xmm0, %%xmm15, %%xmm13\n sha256rnds2 %%xmm0, %%xmm15, %%xmm14\n sha256rnds2 %%xmm0, %%xmm15, %%xmm7\n"
#define S1 "sha256rnds2 %%xmm0, %%xmm15, %%xmm8\n"
#define QA "sha256msg1 %%xmm4, %%xmm3\n vpalignr $4, %%xmm5, %%xmm6, %%xmm13\n vpaddd %%xmm13, %%xmm3, %%xmm3\n sha256msg2 %%xmm6, %%xmm3\n vpaddd %%xmm3, %%xmm15, %%xmm0\n sha256rnds2 %%xmm0, %%xmm1, %%xmm2\n vpshufd $0x0e, %%xmm0, %%xmm0\n sha256rnds2 %%xmm0, %%xmm2, %%xmm1\n"
#define QB "sha256msg1 %%xmm10, %%xmm9\n vpalignr $4, %%xmm11, %%xmm12, %%xmm14\n vpaddd %%xmm14, %%xmm9, %%xmm9\n sha256msg2 %%xmm12, %%xmm9\n vpaddd %%xmm9, %%xmm15, %%xmm0\n sha256rnds2 %%xmm0, %%xmm7, %%xmm8\n vpshufd $0x0e, %%xmm0, %%xmm0\n sha256rnds2 %%xmm0, %%xmm8, %%xmm7\n"

static double best[16];
static const char *names[16];
#define RUN(k, name, iters, body)                                                                        \
    {                                                                                                     \
        uint64_t n = (iters), t0 = __rdtsc();                                                             \
        __asm__ volatile("mov %0, %%rcx\n 1:\n" body "dec %%rcx\n jnz 1b\n"                               \
                         :                                                                                \
                         : "r"(n)                                                                         \
                         : "rcx", "rax", "rdx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
                           "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");  \
        double t = (double)(__rdtsc() - t0) / n;                                                          \
        if (r == 0 || t < best[k]) best[k] = t;                                                           \
        names[k] = name;                                                                                  \
    }

int main(void) {
    for (int r = 0; r < 15; r++) {
        RUN(0, "64 dependent scalar adds", 2000000, G8 G8 G8 G8 G8 G8 G8 G8)
        RUN(1, "8 rnds2, independent", 2000000, S8)
        RUN(2, "8 rnds2, one chain", 2000000, S1 S1 S1 S1 S1 S1 S1 S1)
        RUN(3, "ALU", 2000000, ALU)
        RUN(4, "ALU + 8 rnds2", 2000000, ALU S8)
        RUN(5, "2 quads", 2000000, QA QB)
        RUN(6, "2xALU", 1000000, ALU ALU)
        RUN(7, "2xALU + 2 quads", 1000000, ALU QA ALU QB)
    }
    double tsc_per_cycle = best[0] / 64;
    printf("core clock: %.2f x TSC\n", 1 / tsc_per_cycle);
    for (int k = 1; k < 8; k++) printf("%-28s %7.1f core cycles per iteration\n", names[k], best[k] / tsc_per_cycle);
    printf("vector-port time one SHA-NI quad takes from the AVX-512 work: %.1f cycles\n",
           (best[7] - best[6]) / tsc_per_cycle / 2);
    return 0;
}
