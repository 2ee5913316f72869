/*
 * The host probe on a directory shaped like /proc: GPUs grouped by model in
 * bus order, the CPU model, memory; and the real /proc of this machine.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "host.h"
#include "xalloc.h"

static void put(const char *root, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", root, rel);
	char *dir = xstrdup(path);
	*strrchr(dir, '/') = '\0';
	cr_assert_eq(floe_mkdir_p(dir, 0755), 0, "%s", dir);
	FILE *f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs(text, f);
	fclose(f);
	free(dir);
	free(path);
}

static const char gpu_info[] = "Model: \t\t %s\nIRQ:   \t\t 42\nGPU UUID: \t GPU-%s\n"
			       "Bus Location: \t %s\n";

static void put_gpu(const char *root, const char *bus, const char *model)
{
	char rel[128], text[512];
	snprintf(rel, sizeof(rel), "driver/nvidia/gpus/%s/information", bus);
	snprintf(text, sizeof(text), gpu_info, model, bus, bus);
	put(root, rel, text);
}

Test(host, gpus_by_model_in_bus_order)
{
	char root[] = "/tmp/floe-host-XXXXXX";
	cr_assert(mkdtemp(root));
	put(root, "cpuinfo",
	    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9454 48-Core "
	    "Processor  \nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9454 48-Core "
	    "Processor\n");
	put(root, "meminfo", "MemTotal:       24576000 kB\nMemFree:         1000 kB\n");
	put_gpu(root, "0000:c1:00.0", "NVIDIA A10");
	put_gpu(root, "0000:18:00.0", "NVIDIA H100 80GB HBM3");
	put_gpu(root, "0000:2a:00.0", "NVIDIA H100 80GB HBM3");
	put(root, "driver/nvidia/gpus/0000:ff:00.0/information", "IRQ: 1\n"); /* no model */

	struct floe_host h;
	floe_host_probe(&h, root);
	cr_expect_str_eq(h.cpu_model, "AMD EPYC 9454 48-Core Processor");
	cr_expect_eq(h.memory_bytes, 24576000ull * 1024);
	cr_expect_gt(h.cpus, 0);
	cr_assert_eq(h.n_gpus, 2);
	cr_expect_str_eq(h.gpus[0].model, "NVIDIA H100 80GB HBM3");
	cr_expect_str_eq(h.gpus[0].instance_type, "nvidia-h100-80gb-hbm3");
	cr_expect_eq(h.gpus[0].count, 2);
	cr_expect_str_eq(h.gpus[1].model, "NVIDIA A10");
	cr_expect_str_eq(h.gpus[1].instance_type, "nvidia-a10");
	cr_expect_eq(h.gpus[1].count, 1);
	floe_host_free(&h);
	floe_rm_rf(root);
}

Test(host, an_empty_proc_gives_an_empty_host)
{
	char root[] = "/tmp/floe-host-XXXXXX";
	cr_assert(mkdtemp(root));
	struct floe_host h;
	floe_host_probe(&h, root);
	cr_expect_null(h.cpu_model);
	cr_expect_eq(h.memory_bytes, 0);
	cr_expect_eq(h.n_gpus, 0);
	cr_expect_str_neq(h.arch, "");
	floe_host_free(&h);
	rmdir(root);
}

Test(host, this_machine)
{
	struct floe_host h;
	floe_host_probe(&h, "/proc");
	cr_expect_eq(h.cpus, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN));
	cr_expect_gt(h.memory_bytes, 1ull << 28);
	floe_host_free(&h);
}

Test(host, instance_type_slugs)
{
	static const char *const cases[][2] = {
		{ "NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3" },
		{ "  Tesla  T4 ", "tesla-t4" },
		{ "NVIDIA RTX A6000 (rev. 2)", "nvidia-rtx-a6000-rev-2" },
		{ "***", "gpu" },
		{ "", "gpu" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = floe_host_instance_type(cases[i][0]);
		cr_expect_str_eq(t, cases[i][1], "'%s'", cases[i][0]);
		free(t);
	}
}
