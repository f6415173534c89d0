/*
 * libprotobuf-c, loaded with dlopen() by --format pprof (ana_prof_pprof),
 * not linked: the other commands never pay for loading and relocating it.
 * Each function the generated code (profile.pb-c.c) calls is a stub of the
 * same name that forwards to the library (common/lazy.h).
 *
 * protobuf_c_empty_string is data, not a function: the generated
 * descriptors and *__INIT macros take its address in static initializers,
 * before anything is loaded, so it cannot be forwarded.  It is defined
 * here instead.  That is exact, not an approximation: the library never
 * refers to its own copy (it has no relocation against it; it only
 * exports it for generated code), and compares a string with a field's
 * default only through the descriptor, which points here.
 */
#include "analysis/analysis.h"

#include <protobuf-c/protobuf-c.h>

#include "common/lazy.h"

#ifndef LP_PBC_SONAME
#define LP_PBC_SONAME "libprotobuf-c.so.1"
#endif

static struct lp_lazy pbc_lib = { { LP_PBC_SONAME, NULL, NULL }, { NULL },
				  0, "" };

int
ana_pprof_load(struct lp_err *err)
{
	if (lp_lazy_load(&pbc_lib) < 0)
		return lp_err_set(err, LP_ENOTOOL, "cannot load libprotobuf-c "
				  "for --format pprof: %s (install "
				  "libprotobuf-c1)", pbc_lib.why);
	return 0;
}

const char protobuf_c_empty_string[] = "";

LP_LAZY_FN(pbc_lib, size_t, protobuf_c_message_get_packed_size,
	   (const ProtobufCMessage *m), (m))
LP_LAZY_FN(pbc_lib, size_t, protobuf_c_message_pack,
	   (const ProtobufCMessage *m, uint8_t *out), (m, out))
LP_LAZY_FN(pbc_lib, size_t, protobuf_c_message_pack_to_buffer,
	   (const ProtobufCMessage *m, ProtobufCBuffer *b), (m, b))
LP_LAZY_FN(pbc_lib, ProtobufCMessage *, protobuf_c_message_unpack,
	   (const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a,
	    size_t len, const uint8_t *data), (d, a, len, data))
LP_LAZY_VOID(pbc_lib, protobuf_c_message_free_unpacked,
	     (ProtobufCMessage *m, ProtobufCAllocator *a), (m, a))
