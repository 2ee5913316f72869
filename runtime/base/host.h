/*
 * What this machine offers replicas: CPUs, memory and NVIDIA GPUs, read
 * from /proc (the NVIDIA driver lists each GPU under
 * /proc/driver/nvidia/gpus/BUS/information). Billing names instance types
 * after the GPU model; the endpoint API's provider route lists it all.
 */
#ifndef FLOE_HOST_H
#define FLOE_HOST_H

#include <stddef.h>
#include <stdint.h>

/** GPUs of one model. */
struct floe_host_gpu {
	char *model;         /* as the driver names it: "NVIDIA H100 80GB HBM3" */
	char *instance_type; /* floe_host_instance_type(model): "nvidia-h100-80gb-hbm3" */
	uint32_t count;
};

struct floe_host {
	char *cpu_model;            /* /proc/cpuinfo's "model name", or NULL */
	uint32_t cpus;              /* CPUs floed may run on (its affinity mask) */
	uint64_t memory_bytes;      /* MemTotal */
	char *arch;                 /* uname's machine: "x86_64" */
	struct floe_host_gpu *gpus; /* by model, in the driver's order of first appearance */
	size_t n_gpus;
};

/**
 * Read the host from proc_root (normally "/proc"; tests pass a directory of
 * the same shape). What cannot be read stays empty (no GPUs, no model).
 * Free with floe_host_free.
 */
void floe_host_probe(struct floe_host *h, const char *proc_root);

void floe_host_free(struct floe_host *h);

/**
 * A GPU model as an instance type: lower case, runs of other characters as
 * one '-' ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"). malloc'd;
 * "gpu" when nothing is left.
 */
char *floe_host_instance_type(const char *model);

#endif
