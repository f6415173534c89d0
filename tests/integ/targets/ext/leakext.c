/*
 * A tiny Ruby C extension for the malloc-site tests, built at test time
 * (tests/integ/test_malloc*.sh) against Debian's ruby-dev headers.
 *
 *   LeakExt.leak(n)   malloc(n), filled, never freed
 *   LeakExt.churn(n)  malloc(n), filled, freed at once
 *
 * The two functions that call malloc are global, not inlined, so their
 * names are in .dynsym and each is its own frame.
 */
#include <ruby.h>
#include <stdlib.h>
#include <string.h>

void *lp_ext_leak_bytes(size_t n);
void lp_ext_churn_bytes(size_t n);

/* keeps the compiler from eliding malloc/free pairs */
void *volatile lp_ext_sink;

__attribute__((noinline)) void *
lp_ext_leak_bytes(size_t n)
{
	void *p = malloc(n);

	if (p)
		memset(p, 0xa5, n);
	lp_ext_sink = p;
	return p;
}

__attribute__((noinline)) void
lp_ext_churn_bytes(size_t n)
{
	void *p = malloc(n);

	if (p) {
		memset(p, 0x5a, n);
		lp_ext_sink = p;
		free(p);
	}
	lp_ext_sink = NULL;
}

static VALUE
m_leak(VALUE self, VALUE n)
{
	(void)self;
	lp_ext_leak_bytes(NUM2SIZET(n));
	return Qnil;
}

static VALUE
m_churn(VALUE self, VALUE n)
{
	(void)self;
	lp_ext_churn_bytes(NUM2SIZET(n));
	return Qnil;
}

void
Init_leakext(void)
{
	VALUE mod = rb_define_module("LeakExt");

	rb_define_module_function(mod, "leak", m_leak, 1);
	rb_define_module_function(mod, "churn", m_churn, 1);
}
