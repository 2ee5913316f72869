/*
 * The on-disk snapshot store. Metadata is a msgpack map with string keys,
 * so fields can be added without breaking older files (unknown keys are
 * skipped, missing ones stay zero), followed by the SHA-256 of the map: a
 * flipped bit anywhere (the pipe inode CRIU matches the engine's log by,
 * a file size) must not pass for good metadata. A file that does not parse, or images
 * that do not match it, make the snapshot "damaged": the caller quarantines
 * it and starts fresh.
 */
#define LOG_TAG "snapshot"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "fsutil.h"
#include "log.h"
#include "msgpack-util.h"
#include "sha256.h"
#include "store.h"
#include "xalloc.h"

#define META_NAME "meta.msgpack"
#define META_MAX (1u << 20)
#define META_VERSION 1
#define QUARANTINE_KEEP 8

void floe_snapshot_meta_free(struct floe_snapshot_meta *m)
{
	free(m->files);
	m->files = NULL;
	m->n_files = 0;
}

void floe_snapshot_meta_copy(struct floe_snapshot_meta *dst, const struct floe_snapshot_meta *src)
{
	*dst = *src;
	dst->files = NULL;
	if (src->n_files) {
		dst->files = xcalloc(src->n_files, sizeof(*src->files));
		memcpy(dst->files, src->files, src->n_files * sizeof(*src->files));
	}
}

const char *floe_kernel_release(void)
{
	static char release[65];
	if (!release[0]) {
		struct utsname u;
		snprintf(release, sizeof(release), "%s", uname(&u) == 0 ? u.release : "unknown");
	}
	return release;
}

/* --- key ------------------------------------------------------------------ */

static void hash_str(struct floe_sha256 *h, const char *tag, const char *s)
{
	floe_sha256_update(h, tag, strlen(tag) + 1);
	if (s)
		floe_sha256_update(h, s, strlen(s));
	floe_sha256_update(h, "", 1);
}

/* A file's identity without reading it: rebuilding a binary or replacing a
 * script changes at least its mtime. */
static void hash_file_identity(struct floe_sha256 *h, const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	char id[256];
	snprintf(id, sizeof(id), "%s:%ju:%ju:%jd:%jd.%09ld", path, (uintmax_t)st.st_dev,
		 (uintmax_t)st.st_ino, (intmax_t)st.st_size, (intmax_t)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	hash_str(h, "file", id);
}

/* argv[0] as execvp will find it. */
static void hash_executable(struct floe_sha256 *h, const char *cmd)
{
	if (!cmd)
		return;
	if (strchr(cmd, '/')) {
		hash_file_identity(h, cmd);
		return;
	}
	char full[PATH_MAX];
	if (floe_find_executable(cmd, NULL, full, sizeof(full)) == 0)
		hash_file_identity(h, full);
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct floe_kv *)a)->key, ((const struct floe_kv *)b)->key);
}

void floe_snapshot_key(const struct floe_endpoint_config *cfg, const char *init_path,
		       char key[FLOE_SNAPSHOT_KEY_LEN + 1])
{
	struct floe_sha256 h;
	floe_sha256_init(&h);
	hash_str(&h, "floe-snapshot", "1");
	/* Two endpoints with the same engine still get a snapshot each: one
	 * endpoint's quarantine or redefinition must not take the other's. */
	hash_str(&h, "endpoint", cfg->name);
	hash_str(&h, "engine", cfg->engine);
	for (size_t i = 0; i < cfg->argc; i++)
		hash_str(&h, "arg", cfg->argv[i]);
	/* The environment is a set: order it. */
	struct floe_kv *env = xcalloc(cfg->n_env + 1, sizeof(*env));
	memcpy(env, cfg->env, cfg->n_env * sizeof(*env));
	qsort(env, cfg->n_env, sizeof(*env), kv_cmp);
	for (size_t i = 0; i < cfg->n_env; i++) {
		hash_str(&h, "env", env[i].key);
		hash_str(&h, "=", env[i].value);
	}
	free(env);
	char num[32];
	snprintf(num, sizeof(num), "%u", cfg->port);
	hash_str(&h, "port", num);
	hash_str(&h, "health", cfg->health_route);
	snprintf(num, sizeof(num), "%d", (int)cfg->ready);
	hash_str(&h, "ready", num);
	hash_str(&h, "warmup-method", cfg->snapshot.warmup_method);
	hash_str(&h, "warmup-path", cfg->snapshot.warmup_path);
	hash_str(&h, "warmup-body", cfg->snapshot.warmup_body);
	hash_file_identity(&h, init_path);
	hash_executable(&h, cfg->argc ? cfg->argv[0] : NULL);
	for (size_t i = 1; i < cfg->argc; i++)
		if (cfg->argv[i][0] == '/')
			hash_file_identity(&h, cfg->argv[i]);
	uint8_t d[FLOE_SHA256_LEN];
	floe_sha256_final(&h, d);
	floe_sha256_hex(d, key);
}

/* --- paths ---------------------------------------------------------------- */

char *floe_snapstore_dir(const char *data_dir, const char *key)
{
	return xasprintf("%s/snapshots/%s", data_dir, key);
}

char *floe_snapstore_images(const char *data_dir, const char *key)
{
	return xasprintf("%s/snapshots/%s/images", data_dir, key);
}

bool floe_snapshot_key_valid(const char *s, size_t n)
{
	if (n != FLOE_SNAPSHOT_KEY_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int floe_snapstore_init(const char *data_dir, floe_error *err)
{
	char *tmp = xasprintf("%s/snapshots/.tmp", data_dir);
	char *quar = xasprintf("%s/snapshots/quarantine", data_dir);
	/* Dumps a crashed floed left half-written. */
	int rc = floe_rm_rf(tmp);
	if (rc < 0)
		log_warn("remove %s: %s", tmp, strerror(-rc));
	rc = floe_mkdir_p(tmp, 0700);
	if (rc == 0)
		rc = floe_mkdir_p(quar, 0700);
	if (rc < 0)
		floe_error_set(err, rc, "create %s/snapshots: %s", data_dir, strerror(-rc));
	free(tmp);
	free(quar);
	return rc;
}

int floe_snapstore_begin(const char *data_dir, const char *key, char **dir, floe_error *err)
{
	static unsigned seq;
	for (int attempt = 0; attempt < 100; attempt++) {
		char *d = xasprintf("%s/snapshots/.tmp/%s.%d.%u", data_dir, key, (int)getpid(),
				    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
		char *images = xasprintf("%s/images", d);
		int rc = floe_mkdir_p(images, 0700);
		free(images);
		if (rc == 0) {
			*dir = d;
			return 0;
		}
		free(d);
		if (rc != -EEXIST)
			return floe_error_set(err, rc,
					      "create a dump directory in %s/snapshots: %s",
					      data_dir, strerror(-rc));
	}
	return floe_error_set(err, -EEXIST, "no free dump directory name");
}

/* --- metadata ------------------------------------------------------------- */

static int meta_write(const char *dir, const struct floe_snapshot_meta *m, floe_error *err)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 16);
	floe_mp_pack_kv_u64(&pk, "version", META_VERSION);
	floe_mp_pack_kv_str(&pk, "key", m->key);
	floe_mp_pack_kv_str(&pk, "endpoint", m->endpoint);
	floe_mp_pack_kv_str(&pk, "source_replica", m->source_replica);
	floe_mp_pack_kv_str(&pk, "criu_version", m->criu_version);
	floe_mp_pack_kv_str(&pk, "kernel", m->kernel);
	floe_mp_pack_kv_u64(&pk, "created_at_ms", m->created_at_ms);
	floe_mp_pack_kv_u64(&pk, "image_bytes", m->image_bytes);
	floe_mp_pack_kv_u64(&pk, "pages_bytes", m->pages_bytes);
	floe_mp_pack_kv_u64(&pk, "dump_ms", m->dump_ms);
	floe_mp_pack_kv_u64(&pk, "stdio_ino", m->stdio_ino);
	floe_mp_pack_kv_u64(&pk, "external_netns", m->external_netns);
	floe_mp_pack_kv_u64(&pk, "restores", m->restores);
	floe_mp_pack_kv_u64(&pk, "restore_failures", m->restore_failures);
	floe_mp_pack_kv_u64(&pk, "last_restore_ms", m->last_restore_ms);
	floe_mp_pack_str(&pk, "files");
	msgpack_pack_array(&pk, m->n_files);
	for (size_t i = 0; i < m->n_files; i++) {
		msgpack_pack_array(&pk, 2);
		floe_mp_pack_str(&pk, m->files[i].name);
		msgpack_pack_uint64(&pk, m->files[i].size);
	}
	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, sb.data, sb.size);
	floe_sha256_final(&h, digest);
	msgpack_sbuffer_write(&sb, (const char *)digest, sizeof(digest));
	char *path = xasprintf("%s/" META_NAME, dir);
	int rc = floe_write_atomic(path, sb.data, sb.size, 0600);
	if (rc < 0)
		floe_error_set(err, rc, "write %s: %s", path, strerror(-rc));
	free(path);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static bool obj_str(const msgpack_object *o, char *out, size_t size)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= size ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size))
		return false;
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return true;
}

static int meta_parse(const char *data, size_t len, struct floe_snapshot_meta *m)
{
	memset(m, 0, sizeof(*m));
	if (len < FLOE_SHA256_LEN)
		return -EINVAL;
	len -= FLOE_SHA256_LEN;
	struct floe_sha256 h;
	uint8_t digest[FLOE_SHA256_LEN];
	floe_sha256_init(&h);
	floe_sha256_update(&h, data, len);
	floe_sha256_final(&h, digest);
	if (memcmp(digest, data + len, FLOE_SHA256_LEN) != 0)
		return -EINVAL;
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	int rc = -EINVAL;
	if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
	    u.data.type != MSGPACK_OBJECT_MAP)
		goto out;
	const msgpack_object_map *map = &u.data.via.map;
	uint64_t version = 0;
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
		bool u64 = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
		bool ok = true;
		if (floe_mp_key_is(k, "version"))
			ok = u64 && (version = v->via.u64) > 0;
		else if (floe_mp_key_is(k, "key"))
			ok = obj_str(v, m->key, sizeof(m->key));
		else if (floe_mp_key_is(k, "endpoint"))
			ok = obj_str(v, m->endpoint, sizeof(m->endpoint));
		else if (floe_mp_key_is(k, "source_replica"))
			ok = obj_str(v, m->source_replica, sizeof(m->source_replica));
		else if (floe_mp_key_is(k, "criu_version"))
			ok = obj_str(v, m->criu_version, sizeof(m->criu_version));
		else if (floe_mp_key_is(k, "kernel"))
			ok = obj_str(v, m->kernel, sizeof(m->kernel));
#define U64(name)                                          \
	else if (floe_mp_key_is(k, #name))                 \
	{                                                  \
		ok = u64;                                  \
		m->name = (__typeof__(m->name))v->via.u64; \
	}
		U64(created_at_ms)
		U64(image_bytes)
		U64(pages_bytes)
		U64(dump_ms)
		U64(stdio_ino)
		U64(restores)
		U64(restore_failures)
		U64(last_restore_ms)
		U64(external_netns)
#undef U64
		else if (floe_mp_key_is(k, "files"))
		{
			ok = v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size <= 100000;
			if (!ok)
				break;
			m->n_files = v->via.array.size;
			m->files = xcalloc(m->n_files + 1, sizeof(*m->files));
			for (size_t j = 0; j < m->n_files && ok; j++) {
				const msgpack_object *f = &v->via.array.ptr[j];
				ok = f->type == MSGPACK_OBJECT_ARRAY && f->via.array.size == 2 &&
				     obj_str(&f->via.array.ptr[0], m->files[j].name,
					     sizeof(m->files[j].name)) &&
				     !strchr(m->files[j].name, '/') && m->files[j].name[0] != '.' &&
				     f->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER;
				if (ok)
					m->files[j].size = f->via.array.ptr[1].via.u64;
			}
		}
		if (!ok)
			goto out;
	}
	if (version != META_VERSION || !floe_snapshot_key_valid(m->key, strlen(m->key)) ||
	    m->n_files == 0)
		goto out;
	rc = 0;
out:
	msgpack_unpacked_destroy(&u);
	if (rc < 0)
		floe_snapshot_meta_free(m);
	return rc;
}

/* --- lifecycle ------------------------------------------------------------ */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct floe_snapshot_file *)a)->name,
		      ((const struct floe_snapshot_file *)b)->name);
}

/* List images/ into meta: names, sizes, totals. */
static int scan_images(const char *images, struct floe_snapshot_meta *m, floe_error *err)
{
	DIR *d = opendir(images);
	if (!d)
		return floe_error_set(err, -errno, "open %s: %s", images, strerror(errno));
	size_t cap = 16;
	floe_snapshot_meta_free(m);
	m->files = xcalloc(cap, sizeof(*m->files));
	m->image_bytes = m->pages_bytes = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, 0) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (strlen(e->d_name) >= sizeof(m->files[0].name))
			continue; /* CRIU's names are short; nothing floe needs */
		if (m->n_files == cap) {
			cap *= 2;
			m->files = xrealloc(m->files, cap * sizeof(*m->files));
		}
		snprintf(m->files[m->n_files].name, sizeof(m->files[0].name), "%s", e->d_name);
		m->files[m->n_files].size = (uint64_t)st.st_size;
		m->n_files++;
		m->image_bytes += (uint64_t)st.st_size;
		if (strncmp(e->d_name, "pages-", 6) == 0)
			m->pages_bytes += (uint64_t)st.st_size;
	}
	closedir(d);
	qsort(m->files, m->n_files, sizeof(*m->files), name_cmp);
	if (m->n_files == 0)
		return floe_error_set(err, -ENOENT, "%s is empty", images);
	return 0;
}

int floe_snapstore_commit(const char *data_dir, const char *tmp_dir,
			  struct floe_snapshot_meta *meta, floe_error *err)
{
	char *images = xasprintf("%s/images", tmp_dir);
	char *final = floe_snapstore_dir(data_dir, meta->key);
	char *old = NULL;
	int rc = scan_images(images, meta, err);
	if (rc == 0) {
		/* Images reach the disk before the metadata that vouches for
		 * them: after a power loss a snapshot is whole or absent, never
		 * metadata over pages that were still in the page cache. */
		int fd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) < 0)
			rc = floe_error_set(err, -errno, "sync %s: %s", images, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0)
		rc = meta_write(tmp_dir, meta, err);
	if (rc < 0)
		goto fail;
	/* An older snapshot of the same key (a re-snapshot after quarantine
	 * raced with a restore, say): move it aside, then remove it. */
	old = xasprintf("%s.old", tmp_dir);
	if (rename(final, old) < 0 && errno != ENOENT) {
		rc = floe_error_set(err, -errno, "rename %s: %s", final, strerror(errno));
		goto fail;
	}
	if (rename(tmp_dir, final) < 0) {
		rc = floe_error_set(err, -errno, "rename %s to %s: %s", tmp_dir, final,
				    strerror(errno));
		goto fail;
	}
	floe_rm_rf(old);
	char *parent = xasprintf("%s/snapshots", data_dir);
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(parent);
	free(images);
	free(final);
	free(old);
	return 0;
fail:
	floe_rm_rf(tmp_dir);
	free(images);
	free(final);
	free(old);
	return rc;
}

int floe_snapstore_verify(const char *data_dir, const struct floe_snapshot_meta *meta,
			  floe_error *err)
{
	char *images = floe_snapstore_images(data_dir, meta->key);
	int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;
	if (dfd < 0) {
		rc = floe_error_set(err, errno == ENOENT ? -EIO : -errno, "open %s: %s", images,
				    strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < meta->n_files; i++) {
		struct stat st;
		if (fstatat(dfd, meta->files[i].name, &st, 0) < 0) {
			/* -EIO, not -ENOENT: a file of it missing is damage, not "none" */
			rc = floe_error_set(err, errno == ENOENT ? -EIO : -errno, "%s/%s: %s",
					    images, meta->files[i].name, strerror(errno));
			break;
		}
		if ((uint64_t)st.st_size != meta->files[i].size) {
			rc = floe_error_set(err, -EIO,
					    "%s/%s: %jd bytes, the snapshot recorded %" PRIu64,
					    images, meta->files[i].name, (intmax_t)st.st_size,
					    meta->files[i].size);
			break;
		}
	}
	close(dfd);
out:
	free(images);
	return rc;
}

int floe_snapstore_load(const char *data_dir, const char *key, struct floe_snapshot_meta *meta,
			floe_error *err)
{
	char *dir = floe_snapstore_dir(data_dir, key);
	char *path = xasprintf("%s/" META_NAME, dir);
	char *data = NULL;
	size_t len = 0;
	int rc = floe_read_file(path, META_MAX, &data, &len);
	if (rc == -ENOENT) {
		struct stat st;
		/* No metadata but a directory: damaged. Nothing at all: none. */
		if (stat(dir, &st) == 0)
			rc = floe_error_set(err, -EIO, "%s: missing", path);
		else
			floe_error_set(err, -ENOENT, "no snapshot %s", key);
		goto out;
	}
	if (rc < 0) {
		floe_error_set(err, rc, "read %s: %s", path, strerror(-rc));
		goto out;
	}
	if (meta_parse(data, len, meta) < 0) {
		rc = floe_error_set(err, -EIO, "%s: not valid snapshot metadata", path);
		goto out;
	}
	if (strcmp(meta->key, key) != 0) {
		floe_snapshot_meta_free(meta);
		rc = floe_error_set(err, -EIO, "%s: belongs to snapshot %s", path, meta->key);
		goto out;
	}
	rc = floe_snapstore_verify(data_dir, meta, err);
	if (rc < 0)
		floe_snapshot_meta_free(meta);
out:
	free(data);
	free(path);
	free(dir);
	return rc;
}

int floe_snapstore_save_meta(const char *data_dir, const struct floe_snapshot_meta *meta,
			     floe_error *err)
{
	char *dir = floe_snapstore_dir(data_dir, meta->key);
	struct stat st;
	int rc = 0;
	/* Removed or quarantined meanwhile: nothing to update. */
	if (stat(dir, &st) == 0)
		rc = meta_write(dir, meta, err);
	free(dir);
	return rc;
}

static int qent_cmp(const void *a, const void *b)
{
	const struct dirent *const *x = a, *const *y = b;
	/* KEY.UNIXTIME: order by time, then name */
	const char *tx = strrchr((*x)->d_name, '.'), *ty = strrchr((*y)->d_name, '.');
	long long lx = tx ? atoll(tx + 1) : 0, ly = ty ? atoll(ty + 1) : 0;
	return lx < ly ? -1 : lx > ly ? 1 : strcmp((*x)->d_name, (*y)->d_name);
}

static int quarantine_filter(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static void quarantine_trim(const char *qdir)
{
	struct dirent **ents;
	int n = scandir(qdir, &ents, quarantine_filter, NULL);
	if (n < 0)
		return;
	qsort(ents, (size_t)n, sizeof(*ents), qent_cmp);
	for (int i = 0; i < n; i++) {
		if (n - i > QUARANTINE_KEEP) {
			char *p = xasprintf("%s/%s", qdir, ents[i]->d_name);
			floe_rm_rf(p);
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
}

int floe_snapstore_quarantine(const char *data_dir, const char *key, const char *reason,
			      floe_error *err)
{
	char *dir = floe_snapstore_dir(data_dir, key);
	char *qdir = xasprintf("%s/snapshots/quarantine", data_dir);
	char *dst = xasprintf("%s/%s.%lld", qdir, key, (long long)time(NULL));
	int rc = floe_mkdir_p(qdir, 0700);
	if (rc == 0 && rename(dir, dst) < 0)
		rc = -errno;
	if (rc == -EEXIST || rc == -ENOTEMPTY) {
		/* quarantined twice within a second: the older one goes */
		floe_rm_rf(dst);
		rc = rename(dir, dst) < 0 ? -errno : 0;
	}
	if (rc < 0) {
		floe_error_set(err, rc, "move %s to %s: %s", dir, dst, strerror(-rc));
	} else {
		char *why = xasprintf("%s/REASON", dst);
		FILE *f = fopen(why, "we");
		if (f) {
			fprintf(f, "%s\n", reason);
			fclose(f);
		}
		free(why);
		quarantine_trim(qdir);
	}
	free(dir);
	free(qdir);
	free(dst);
	return rc;
}

int floe_snapstore_remove(const char *data_dir, const char *key, floe_error *err)
{
	if (!floe_snapshot_key_valid(key, strlen(key)))
		return floe_error_set(err, -ENOENT, "no snapshot %s", key);
	char *dir = floe_snapstore_dir(data_dir, key);
	struct stat st;
	int rc;
	if (stat(dir, &st) < 0) {
		rc = floe_error_set(err, -ENOENT, "no snapshot %s", key);
	} else {
		/* Rename first so a concurrent load never sees half a snapshot. */
		char *gone =
			xasprintf("%s/snapshots/.tmp/%s.removed.%d", data_dir, key, (int)getpid());
		rc = rename(dir, gone) < 0 ? -errno : 0;
		if (rc == 0)
			rc = floe_rm_rf(gone);
		if (rc < 0)
			floe_error_set(err, rc, "remove %s: %s", dir, strerror(-rc));
		free(gone);
	}
	free(dir);
	return rc;
}

int floe_snapstore_list(const char *data_dir, struct floe_snapshot_meta **metas, size_t *n)
{
	*metas = NULL;
	*n = 0;
	char *root = xasprintf("%s/snapshots", data_dir);
	DIR *d = opendir(root);
	free(root);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!floe_snapshot_key_valid(e->d_name, strlen(e->d_name)))
			continue;
		struct floe_snapshot_meta m;
		floe_error err = { 0 };
		if (floe_snapstore_load(data_dir, e->d_name, &m, &err) < 0) {
			log_warn("snapshot %s: %s", e->d_name, err.msg);
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*metas = xrealloc(*metas, cap * sizeof(**metas));
		}
		(*metas)[(*n)++] = m;
	}
	closedir(d);
	return 0;
}
