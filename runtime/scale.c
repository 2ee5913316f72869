#include "scale.h"

struct floe_scale_decision floe_scale_decide(const struct floe_scale_input *in)
{
	struct floe_scale_decision d = { 0, 0, 0 };
	uint32_t active = in->ready + in->starting;
	uint32_t demand = in->in_flight + in->held;
	uint32_t max = in->max_replica > 0 ? in->max_replica : 1;
	uint32_t floor = in->min_replica > in->update_floor ? in->min_replica : in->update_floor;
	uint32_t min = floor < max ? floor : max;
	uint32_t want = active;

	if (in->idle_expired && demand == 0) {
		if (in->ready > min)
			d.drain = in->ready - min;
		want = active - d.drain;
	} else if (in->ready == 0) {
		/* Cold: one replica answers the burst; scale-up waits until it is
		 * ready and the per-replica load is known. */
		if (in->starting == 0 && demand > 0)
			want = 1;
	} else if (in->starting == 0 && demand > (uint64_t)in->ready * in->target_concurrency) {
		want = active + 1;
	}
	if (want < min)
		want = min;
	if (want > max)
		want = max;
	if (want > active)
		d.start = want - active;
	d.desired = want;
	return d;
}
