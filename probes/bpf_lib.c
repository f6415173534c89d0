/*
 * libbpf, loaded with dlopen() by malloc tracing (malloc, attach
 * --malloc-sites), not linked: the other commands never pay for loading
 * and relocating it.  Each function we use (the skeleton's included) is a
 * stub of the same name that forwards to the library (common/lazy.h).
 */
#include "probes/probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/lazy.h"

#ifndef LP_BPF_SONAME
#define LP_BPF_SONAME "libbpf.so.1"
#endif

static struct lp_lazy bpf_lib = { { LP_BPF_SONAME, NULL, NULL }, { NULL },
				  0, "" };

int
probe__bpf_load(struct lp_err *err)
{
	if (lp_lazy_load(&bpf_lib) < 0)
		return lp_err_set(err, LP_EBPF, "cannot load libbpf: %s "
				  "(install libbpf1)", bpf_lib.why);
	return 0;
}

LP_LAZY_FN(bpf_lib, int, bpf_link__destroy, (struct bpf_link *l), (l))
LP_LAZY_FN(bpf_lib, int, bpf_map__fd, (const struct bpf_map *m), (m))
LP_LAZY_FN(bpf_lib, int, bpf_map__set_max_entries,
	   (struct bpf_map *m, __u32 n), (m, n))
LP_LAZY_FN(bpf_lib, int, bpf_map_get_next_key,
	   (int fd, const void *key, void *next), (fd, key, next))
LP_LAZY_FN(bpf_lib, int, bpf_map_lookup_batch,
	   (int fd, void *in, void *out, void *keys, void *values,
	    __u32 *count, const struct bpf_map_batch_opts *o),
	   (fd, in, out, keys, values, count, o))
LP_LAZY_FN(bpf_lib, int, bpf_map_lookup_elem,
	   (int fd, const void *key, void *value), (fd, key, value))
LP_LAZY_VOID(bpf_lib, bpf_object__destroy_skeleton,
	     (struct bpf_object_skeleton *s), (s))
LP_LAZY_FN(bpf_lib, int, bpf_object__load_skeleton,
	   (struct bpf_object_skeleton *s), (s))
LP_LAZY_FN(bpf_lib, int, bpf_object__open_skeleton,
	   (struct bpf_object_skeleton *s,
	    const struct bpf_object_open_opts *o), (s, o))
LP_LAZY_FN(bpf_lib, struct bpf_link *, bpf_program__attach_uprobe_opts,
	   (const struct bpf_program *p, pid_t pid, const char *path,
	    size_t off, const struct bpf_uprobe_opts *o),
	   (p, pid, path, off, o))
LP_LAZY_FN(bpf_lib, int, libbpf_num_possible_cpus, (void), ())
LP_LAZY_FN(bpf_lib, int, libbpf_probe_bpf_map_type,
	   (enum bpf_map_type t, const void *o), (t, o))
LP_LAZY_FN(bpf_lib, int, libbpf_probe_bpf_prog_type,
	   (enum bpf_prog_type t, const void *o), (t, o))
LP_LAZY_FN(bpf_lib, libbpf_print_fn_t, libbpf_set_print,
	   (libbpf_print_fn_t fn), (fn))
LP_LAZY_FN(bpf_lib, int, ring_buffer__consume, (struct ring_buffer *rb),
	   (rb))
LP_LAZY_VOID(bpf_lib, ring_buffer__free, (struct ring_buffer *rb), (rb))
LP_LAZY_FN(bpf_lib, struct ring_buffer *, ring_buffer__new,
	   (int fd, ring_buffer_sample_fn cb, void *ctx,
	    const struct ring_buffer_opts *o), (fd, cb, ctx, o))
LP_LAZY_FN(bpf_lib, int, ring_buffer__poll, (struct ring_buffer *rb,
	   int ms), (rb, ms))
