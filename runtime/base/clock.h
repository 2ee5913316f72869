/* Monotonic and wall-clock time in the units floe uses everywhere. */
#ifndef FLOE_CLOCK_H
#define FLOE_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Monotonic nanoseconds (CLOCK_MONOTONIC). */
static inline uint64_t floe_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t floe_now_ms(void)
{
	return floe_now_ns() / 1000000ull;
}

/** Wall-clock Unix time in milliseconds (CLOCK_REALTIME): for timestamps, never for intervals. */
static inline uint64_t floe_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

#endif
