/* Small file-system helpers. */
#ifndef FLOE_FSUTIL_H
#define FLOE_FSUTIL_H

#include <sys/types.h>

/** mkdir -p: create path and its missing parents with mode. Returns 0 or -errno. */
int floe_mkdir_p(const char *path, mode_t mode);

#endif
