/*
 * What kind of Ruby is this?  Decided by the symbols a target maps and by
 * facts from /proc, never by a version table.
 */
#include "probes/probes.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

int
probe_ruby_detect(struct inj_target *t, struct probe_ruby *out,
		  struct lp_err *err)
{
	const struct inj_procinfo *pi = inj_info(t);
	uint64_t desc = 0;
	const char *mod;
	char rbmod[256];

	memset(out, 0, sizeof(*out));
	if (inj_lookup(t, NULL, "rb_eval_string", &out->eval_string,
		       NULL) < 0)
		return lp_err_set(err, LP_ENOTRUBY, "process %d (%s) is not a "
				  "Ruby (MRI) process: none of its mapped ELF "
				  "files defines rb_eval_string", (int)pi->pid,
				  pi->comm);
	mod = inj_symbol_module(t, "rb_eval_string");
	snprintf(out->libruby, sizeof(out->libruby), "%s", mod ? mod : "?");
	/* The rest lives in the same module (libruby.so or a static ruby):
	 * looking only there keeps a miss from loading every other file's
	 * .symtab. */
	{
		const char *b = strrchr(out->libruby, '/');

		snprintf(rbmod, sizeof(rbmod), "%s", b ? b + 1 : out->libruby);
	}

	/* Ruby 3.3+: preregister + trigger (master removed register_one;
	 * 3.3 keeps it as a wrapper).  Prefer the new API when present. */
	if (inj_lookup(t, rbmod, "rb_postponed_job_preregister",
		       &out->preregister, NULL) == 0 &&
	    inj_lookup(t, rbmod, "rb_postponed_job_trigger", &out->trigger,
		       NULL) == 0) {
		out->api = "preregister+trigger";
	} else {
		out->preregister = out->trigger = 0;
		if (inj_lookup(t, rbmod, "rb_postponed_job_register_one",
			       &out->register_one, NULL) < 0)
			return lp_err_set(err, LP_ENOTRUBY, "process %d (%s): "
					  "this Ruby has neither "
					  "rb_postponed_job_register_one nor "
					  "rb_postponed_job_preregister "
					  "(Ruby < 2.1?)", (int)pi->pid,
					  pi->comm);
		out->api = "register_one";
	}

	/*
	 * Up to 2.7 the interpreter's "current thread" is a process global,
	 * set by whichever thread takes the GVL, not a thread-local: an
	 * injected register_one marks the thread that last held the GVL,
	 * which may have ended since (a previous helper, a Timeout thread).
	 * eval.c wakes the main thread first so that the global names it.
	 */
	if (out->register_one &&
	    inj_lookup(t, rbmod, "ruby_current_execution_context_ptr",
		       &out->cur_global, NULL) < 0) {
		if (inj_lookup(t, rbmod, "ruby_current_thread",
			       &out->cur_global, NULL) == 0)
			out->cur_is_thread = true;
		else
			out->cur_global = 0;
	}
	if (out->register_one &&
	    inj_lookup(t, rbmod, "ruby_xfree", &out->xfree, NULL) < 0)
		out->xfree = 0;

	/* wake.c: both or neither */
	if (inj_lookup(t, rbmod, "rb_threadptr_interrupt",
		       &out->threadptr_interrupt, NULL) < 0 ||
	    inj_lookup(t, rbmod, "rb_thread_main", &out->thread_main,
		       NULL) < 0)
		out->threadptr_interrupt = out->thread_main = 0;

	if (inj_lookup(t, rbmod, "ruby_description", &desc, NULL) == 0)
		inj_read_string(t, desc, out->description,
				sizeof(out->description), NULL);
	if (!out->description[0])
		snprintf(out->description, sizeof(out->description),
			 "ruby (version unknown)");

	/*
	 * Wake signals.  SIGVTALRM is Ruby's own unblocking-function signal
	 * (no-op handler, no SA_RESTART) up to 3.2; on the 3.3+ thread
	 * scheduler sleeping threads wait on a futex it does not end, but
	 * SIGCHLD makes Ruby's handler wake the timer thread.  Only ever
	 * send a signal the target catches: the default action of both
	 * could kill (SIGVTALRM) or be lost (SIGCHLD).
	 */
	/*
	 * The helper notices that leakprobe is gone by EPIPE/EOF.  Ruby
	 * catches SIGPIPE; a target that put it back to the default action
	 * (trap("PIPE", "SYSTEM_DEFAULT")) would be killed by that write.
	 */
	if (!(pi->sig_caught & (1ull << (SIGPIPE - 1))) &&
	    !(pi->sig_ignored & (1ull << (SIGPIPE - 1))))
		return lp_err_set(err, LP_EUNSAFE, "process %d (%s) has SIGPIPE "
				  "at its default action (trap(\"PIPE\", "
				  "\"SYSTEM_DEFAULT\")?): the helper thread "
				  "could kill it when leakprobe ends; refusing",
				  (int)pi->pid, pi->comm);
	out->wake_vtalrm = pi->sig_caught & (1ull << (SIGVTALRM - 1));
	out->wake_chld = out->preregister &&
			 (pi->sig_caught & (1ull << (SIGCHLD - 1)));
	lp_debug("ruby: %s in %s, api %s, wake vtalrm=%d chld=%d, "
		 "current thread %s, rb_threadptr_interrupt %s",
		 out->description, out->libruby, out->api, out->wake_vtalrm,
		 out->wake_chld, out->cur_global ? "global" : "thread-local",
		 out->threadptr_interrupt ? "found" : "absent");
	return 0;
}
