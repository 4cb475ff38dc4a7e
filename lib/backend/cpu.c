/*
 * cpu.c: backend_cpu, the kernels of cpu_impl.h in fp32: OpenBLAS and
 * OpenMP, for training and prefill.
 */
#define REAL float
#include "backend/cpu_impl.h"

const struct backend backend_cpu = CPU_OPS_INIT;
