#include "host.h"

#include <dirent.h>
#include <stdbool.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "xalloc.h"

char *floe_host_instance_type(const char *model)
{
	size_t cap = strlen(model) + 1, n = 0;
	char *out = xmalloc(cap > 4 ? cap : 4);
	bool dash = false;
	for (const char *p = model; *p; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && n > 0)
				out[n++] = '-';
			dash = false;
			out[n++] = c;
		} else {
			dash = true;
		}
	}
	if (n == 0)
		memcpy(out, "gpu", 4);
	else
		out[n] = '\0';
	return out;
}

/* "Key:   value\n" -> a copy of value, trimmed; NULL when line is not key's. */
static char *field(const char *line, const char *key)
{
	size_t k = strlen(key);
	if (strncmp(line, key, k) != 0)
		return NULL;
	const char *v = line + k;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != ':')
		return NULL;
	v++;
	v += strspn(v, " \t");
	size_t n = strcspn(v, "\r\n");
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n ? xstrndup(v, n) : NULL;
}

/* The first value of key in file, or NULL. */
static char *file_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[512], *v = NULL;
	while (f && !v && fgets(line, sizeof(line), f))
		v = field(line, key);
	if (f)
		fclose(f);
	return v;
}

static void add_gpu(struct floe_host *h, char *model)
{
	for (size_t i = 0; i < h->n_gpus; i++) {
		if (strcmp(h->gpus[i].model, model) == 0) {
			h->gpus[i].count++;
			free(model);
			return;
		}
	}
	h->gpus = xrealloc(h->gpus, (h->n_gpus + 1) * sizeof(*h->gpus));
	h->gpus[h->n_gpus++] =
		(struct floe_host_gpu){ .model = model,
					.instance_type = floe_host_instance_type(model),
					.count = 1 };
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each GPU the driver lists, in bus order (readdir's order is the file
 * system's: sorted, the same on every call). */
static void probe_gpus(struct floe_host *h, const char *proc_root)
{
	char *dir = xasprintf("%s/driver/nvidia/gpus", proc_root);
	DIR *d = opendir(dir);
	char **buses = NULL;
	size_t n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		buses = xrealloc(buses, (n + 1) * sizeof(*buses));
		buses[n++] = xstrdup(e->d_name);
	}
	if (d)
		closedir(d);
	if (n > 1)
		qsort(buses, n, sizeof(*buses), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s/information", dir, buses[i]);
		char *model = file_field(path, "Model");
		if (model)
			add_gpu(h, model);
		free(path);
		free(buses[i]);
	}
	free(buses);
	free(dir);
}

void floe_host_probe(struct floe_host *h, const char *proc_root)
{
	memset(h, 0, sizeof(*h));
	char *path = xasprintf("%s/cpuinfo", proc_root);
	h->cpu_model = file_field(path, "model name");
	free(path);
	cpu_set_t set;
	h->cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? (uint32_t)CPU_COUNT(&set) : 0;
	path = xasprintf("%s/meminfo", proc_root);
	char *mem = file_field(path, "MemTotal");
	free(path);
	if (mem) {
		h->memory_bytes = strtoull(mem, NULL, 10) * 1024; /* "24576000 kB" */
		free(mem);
	}
	struct utsname u;
	h->arch = xstrdup(uname(&u) == 0 ? u.machine : "unknown");
	probe_gpus(h, proc_root);
}

void floe_host_free(struct floe_host *h)
{
	free(h->cpu_model);
	free(h->arch);
	for (size_t i = 0; i < h->n_gpus; i++) {
		free(h->gpus[i].model);
		free(h->gpus[i].instance_type);
	}
	free(h->gpus);
	memset(h, 0, sizeof(*h));
}
