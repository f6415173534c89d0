#include "common/lazy.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

int
lp_lazy_load(struct lp_lazy *l)
{
	int rc;

	/* the collector threads of malloc tracing may get here too */
	pthread_mutex_lock(&lazy_lock);
	if (!l->state) {
		l->state = 1;
		for (int i = 0; i < LP_LAZY_MAX && l->sonames[i]; i++) {
			bool last = i + 1 == LP_LAZY_MAX ||
				    !l->sonames[i + 1];

			l->h[i] = dlopen(l->sonames[i], RTLD_NOW |
					 (last ? RTLD_LOCAL : RTLD_GLOBAL));
			if (!l->h[i]) {
				snprintf(l->why, sizeof(l->why), "%s",
					 dlerror());
				l->state = -1;
				break;
			}
		}
	}
	rc = l->state > 0 ? 0 : -1;
	pthread_mutex_unlock(&lazy_lock);
	return rc;
}

void *
lp_lazy_sym(struct lp_lazy *l, const char *name)
{
	if (lp_lazy_load(l) == 0)
		for (int i = LP_LAZY_MAX - 1; i >= 0; i--) {
			void *f = l->h[i] ? dlsym(l->h[i], name) : NULL;

			if (f)
				return f;
		}
	fprintf(stderr, "leakprobe: BUG: %s unavailable: %s\n", name,
		l->state < 0 ? l->why : "not in the library");
	abort();
}

void *
lp_lazy_get(struct lp_lazy *l, void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!f) {
		f = lp_lazy_sym(l, name);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}
