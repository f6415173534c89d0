/*
 * Prometheus exposition of watch samples (see metrics.h).
 *
 * Three renderings of the same families:
 *  - the Prometheus text format 0.0.4 (HTTP, when the scraper does not ask
 *    for OpenMetrics);
 *  - OpenMetrics 1.0.0 (HTTP, when it does): counters are declared by
 *    their family name and sampled as NAME_total, every family with a unit
 *    has a # UNIT line, and the text ends with # EOF;
 *  - the textfile flavour (watch --openmetrics FILE): node_exporter's
 *    textfile collector and promtool read the 0.0.4 format, where a
 *    counter's # TYPE names the sample (NAME_total) and an OpenMetrics
 *    counter family would be a second, help-less metric.  So the file is
 *    0.0.4 with the OpenMetrics # UNIT lines and the final # EOF: to a
 *    0.0.4 parser they are comments, and # EOF tells any reader the file
 *    is whole.
 *
 * The HTTP server is libmicrohttpd (loaded by --listen only: mhd_lib.c)
 * with its own polling thread; the watch loop publishes a copy of each
 * new exposition under a mutex.  We bind the listening socket ourselves,
 * so that errors carry errno and port 0 can be reported as the port the
 * kernel chose.
 */
#include "cli/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/xalloc.h"

#define CT_TEXT	"text/plain; version=0.0.4; charset=utf-8"
#define CT_OM	"application/openmetrics-text; version=1.0.0; charset=utf-8"

/* ---- rendering ------------------------------------------------------ */

enum msrc { M_METRIC, M_RATE, M_WINDOW };

struct family {
	const char *name;	/* counters: without _total */
	const char *unit;	/* NULL: none */
	bool counter;
	enum msrc src;
	const char *metric;	/* M_METRIC: ana_metric_index name */
	const char *help;
};

static const struct family families[] = {
	{ "leakprobe_rss_bytes", "bytes", false, M_METRIC, "rss",
	  "Resident set size (sum of Rss in /proc/PID/smaps)." },
	{ "leakprobe_pss_bytes", "bytes", false, M_METRIC, "pss",
	  "Proportional set size (sum of Pss)." },
	{ "leakprobe_uss_bytes", "bytes", false, M_METRIC, "uss",
	  "Unique set size (private clean + private dirty)." },
	{ "leakprobe_swap_bytes", "bytes", false, M_METRIC, "swap",
	  "Swapped-out bytes." },
	{ "leakprobe_heap_rss_bytes", "bytes", false, M_METRIC, "heap_rss",
	  "Resident bytes of [heap], glibc's main malloc arena." },
	{ "leakprobe_heap_size_bytes", "bytes", false, M_METRIC, "heap_size",
	  "Mapped size of [heap]." },
	{ "leakprobe_arena_rss_bytes", "bytes", false, M_METRIC, "arena_rss",
	  "Resident bytes of the other glibc malloc arenas (threads)." },
	{ "leakprobe_anon_rss_bytes", "bytes", false, M_METRIC, "anon_rss",
	  "Resident bytes of other anonymous memory (Ruby heap pages, large "
	  "mallocs, thread stacks)." },
	{ "leakprobe_heap_growth_bytes_per_second", "bytes_per_second", false,
	  M_RATE, NULL,
	  "Growth of heap + arena + anon resident bytes over the rate window "
	  "(watch --rate-window)." },
	{ "leakprobe_heap_growth_window_seconds", "seconds", false, M_WINDOW,
	  NULL, "Time span the growth rate was measured over." },
	{ "leakprobe_ruby_live_slots", NULL, false, M_METRIC, "live_slots",
	  "Ruby GC.stat heap_live_slots." },
	{ "leakprobe_ruby_heap_pages", NULL, false, M_METRIC, "heap_pages",
	  "Ruby GC.stat heap_allocated_pages." },
	{ "leakprobe_ruby_malloc_increase_bytes", "bytes", false, M_METRIC,
	  "malloc_increase", "Ruby GC.stat malloc_increase_bytes." },
	{ "leakprobe_ruby_gc", NULL, true, M_METRIC, "gc_count",
	  "Ruby GC runs (GC.stat count)." },
	{ "leakprobe_ruby_major_gc", NULL, true, M_METRIC, "major_gc_count",
	  "Ruby major GC runs (GC.stat major_gc_count)." },
	{ "leakprobe_ruby_allocated_objects", NULL, true, M_METRIC,
	  "allocated_objects", "Ruby objects allocated "
	  "(GC.stat total_allocated_objects)." },
	{ "leakprobe_ruby_freed_objects", NULL, true, M_METRIC,
	  "freed_objects", "Ruby objects freed (GC.stat total_freed_objects)." },
};

static void
mb_grow(struct cli_mbuf *b, size_t more)
{
	b->p = xgrow(b->p, &b->cap, b->len + more + 1, 1);
}

static void __attribute__((format(printf, 2, 3)))
mb_printf(struct cli_mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		mb_grow(b, 256);
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		mb_grow(b, (size_t)n);
	}
}

void
cli_mbuf_release(struct cli_mbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/*
 * A label value: backslash, quote and newline escaped; bytes that are not
 * printable ASCII (comm is any bytes, label values must be UTF-8) become
 * '?'.
 */
static void
mb_label(struct cli_mbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		mb_grow(b, 2);
		if (c == '\\' || c == '"') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = (char)c;
		} else if (c == '\n') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = 'n';
		} else {
			b->p[b->len++] = c < 0x20 || c > 0x7e ? '?' : (char)c;
		}
	}
	b->p[b->len] = '\0';
}

/* Does process p have a value of family f?  Sets *v. */
static bool
family_value(const struct family *f, const struct cli_mproc *p, bool gc,
	     double *v)
{
	int idx;

	switch (f->src) {
	case M_RATE:
		*v = p->rate;
		return p->have_rate;
	case M_WINDOW:
		*v = p->rate_window;
		return p->have_rate;
	case M_METRIC:
		idx = ana_metric_index(f->metric);
		if (idx < 0 || (idx >= ANA_NMETRICS && !gc) ||
		    !ana_sample_has_metric(p->s, idx))
			return false;
		*v = (double)ana_sample_metric(p->s, idx);
		return true;
	}
	return false;
}

static void
render_family(struct cli_mbuf *b, enum cli_mfmt fmt, const struct family *f,
	      const struct cli_mproc *p, size_t n, bool gc)
{
	const char *suffix = f->counter ? "_total" : "";
	/* the name # TYPE and # HELP give: OpenMetrics names the family */
	const char *msuffix = fmt == CLI_MFMT_OPENMETRICS ? "" : suffix;
	size_t have = 0;
	double v;

	for (size_t i = 0; i < n; i++)
		if (family_value(f, &p[i], gc, &v))
			have++;
	if (!have)
		return;
	mb_printf(b, "# HELP %s%s %s\n", f->name, msuffix, f->help);
	mb_printf(b, "# TYPE %s%s %s\n", f->name, msuffix,
		  f->counter ? "counter" : "gauge");
	if (f->unit && fmt != CLI_MFMT_TEXT)
		mb_printf(b, "# UNIT %s%s %s\n", f->name, msuffix, f->unit);
	for (size_t i = 0; i < n; i++) {
		if (!family_value(f, &p[i], gc, &v))
			continue;
		mb_printf(b, "%s%s{pid=\"%d\",comm=\"", f->name, suffix,
			  (int)p[i].s->pid);
		mb_label(b, p[i].s->comm);
		if (f->src == M_METRIC)
			mb_printf(b, "\",starttime=\"%llu\"} %.0f\n",
				  (unsigned long long)p[i].starttime, v);
		else
			mb_printf(b, "\",starttime=\"%llu\"} %.9g\n",
				  (unsigned long long)p[i].starttime, v);
	}
}

void
cli_metrics_render(struct cli_mbuf *b, enum cli_mfmt fmt,
		   const struct cli_mproc *p, size_t n, bool gc,
		   uint64_t now_ns)
{
	bool om = fmt != CLI_MFMT_TEXT;

	b->len = 0;
	mb_grow(b, 0);
	b->p[0] = '\0';
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		render_family(b, fmt, &families[i], p, n, gc);
	mb_printf(b, "# HELP leakprobe_watch_processes Processes sampled by "
		  "leakprobe watch.\n# TYPE leakprobe_watch_processes "
		  "gauge\nleakprobe_watch_processes %zu\n", n);
	mb_printf(b, "# HELP leakprobe_watch_last_sample_timestamp_seconds "
		  "When leakprobe watch last sampled (Unix time).\n"
		  "# TYPE leakprobe_watch_last_sample_timestamp_seconds "
		  "gauge\n");
	if (om)
		mb_printf(b, "# UNIT leakprobe_watch_last_sample_timestamp_"
			  "seconds seconds\n");
	mb_printf(b, "leakprobe_watch_last_sample_timestamp_seconds "
		  "%.3f\n", (double)now_ns / 1e9);
	if (om)
		mb_printf(b, "# EOF\n");
}

/* ---- textfile ------------------------------------------------------- */

int
cli_metrics_write_file(const char *path, const char *text, size_t len,
		       struct lp_err *err)
{
	char tmp[4200];
	size_t off = 0;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return lp_err_sys(err, LP_EIO, "cannot write '%s'", tmp);
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = ENOSPC;
			lp_err_sys(err, LP_EIO, "writing '%s'", tmp);
			goto fail;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0) {
		fd = -1;
		lp_err_sys(err, LP_EIO, "writing '%s'", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		lp_err_sys(err, LP_EIO, "rename '%s' to '%s'", tmp, path);
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -LP_EIO;
}

/* ---- HTTP ----------------------------------------------------------- */

struct cli_httpd {
	struct MHD_Daemon *d;
	int fd;
	pthread_mutex_t mu;
	struct cli_mbuf text, om;
};

/* The q value of one media range ("type/sub;a=b;q=0.5"), 1 when none. */
static double
accept_q(const char *s, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++) {
		if (s[i] != ';')
			continue;
		i++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i + 2 <= n && (s[i] == 'q' || s[i] == 'Q') &&
		    s[i + 1] == '=')
			return strtod(s + i + 2, NULL);
	}
	return 1;
}

/*
 * Content negotiation: OpenMetrics when the Accept header asks for
 * application/openmetrics-text at least as much as for anything else.
 */
static bool
wants_openmetrics(const char *accept)
{
	double om = 0, other = 0;
	const char *p = accept;

	if (!accept)
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *t = p;
		double q;

		while (t < p + n && (*t == ' ' || *t == '\t'))
			t++;
		q = accept_q(t, (size_t)(p + n - t));
		if (!strncasecmp(t, "application/openmetrics-text", 28)) {
			if (q > om)
				om = q;
		} else if (q > other) {
			other = q;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return om > 0 && om >= other;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *ctype,
      const char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body,
					    MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_size, void **req)
{
	static const char index[] =
		"leakprobe watch: metrics are at /metrics\n";
	struct cli_httpd *h = cls;
	enum MHD_Result ret;
	bool om;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
			     "only GET\n", 9);
	if (!strcmp(url, "/"))
		return reply(c, MHD_HTTP_OK, "text/plain", index,
			     sizeof(index) - 1);
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain",
			     "not found: try /metrics\n", 24);
	om = wants_openmetrics(MHD_lookup_connection_value(c,
				MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT));
	pthread_mutex_lock(&h->mu);
	if (om)
		ret = reply(c, MHD_HTTP_OK, CT_OM, h->om.p, h->om.len);
	else
		ret = reply(c, MHD_HTTP_OK, CT_TEXT, h->text.p, h->text.len);
	pthread_mutex_unlock(&h->mu);
	return ret;
}

/* Split "HOST:PORT" / "[V6]:PORT" / ":PORT". */
static int
split_addr(const char *addr, char *host, size_t hostlen, char *port,
	   size_t portlen)
{
	const char *colon, *h = addr, *he;
	char *end;
	unsigned long v;

	if (addr[0] == '[') {
		he = strchr(addr, ']');
		if (!he || he[1] != ':')
			return -1;
		h = addr + 1;
		colon = he + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -1;
		he = colon;
	}
	if ((size_t)(he - h) >= hostlen || strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = '\0';
	strcpy(port, colon + 1);
	errno = 0;
	v = strtoul(port, &end, 10);
	if (!port[0] || *end || errno || v > 65535)
		return -1;
	return 0;
}

static int
listen_on(const char *addr, char *bound, size_t boundlen, struct lp_err *err)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16], hb[INET6_ADDRSTRLEN];
	int fd, one = 1, rc;

	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0)
		return lp_err_set(err, LP_EINVAL, "bad --listen '%s': give "
				  "HOST:PORT, [IPV6]:PORT or :PORT (port 0 to "
				  "65535)", addr);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc)
		return lp_err_set(err, LP_EINVAL, "bad --listen '%s': %s",
				  addr, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		lp_err_sys(err, LP_EIO, "socket for '%s'", addr);
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		lp_err_sys(err, LP_EIO, "cannot listen on '%s'", addr);
		close(fd);
		fd = -1;
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, hb, sizeof(hb));
			snprintf(bound, boundlen, "[%s]:%u", hb,
				 ntohs(s6->sin6_port));
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, hb, sizeof(hb));
			snprintf(bound, boundlen, "%s:%u", hb,
				 ntohs(s4->sin_port));
		}
	}
out:
	freeaddrinfo(ai);
	return fd;
}

struct cli_httpd *
cli_httpd_start(const char *addr, char *bound, size_t boundlen,
		struct lp_err *err)
{
	struct cli_httpd *h;
	sigset_t block, old;

	snprintf(bound, boundlen, "%s", addr);
	if (cli_httpd_load(err) < 0)
		return NULL;
	h = xcalloc(1, sizeof(*h));
	pthread_mutex_init(&h->mu, NULL);
	h->fd = listen_on(addr, bound, boundlen, err);
	if (h->fd < 0)
		goto fail;
	/* Until the first sample: no processes yet. */
	cli_metrics_render(&h->text, CLI_MFMT_TEXT, NULL, 0, false, 0);
	cli_metrics_render(&h->om, CLI_MFMT_OPENMETRICS, NULL, 0, false, 0);
	/*
	 * The server thread must not take SIGINT/SIGTERM: they have to reach
	 * the main thread, whose sleep they end.  It inherits this mask.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
				MHD_USE_POLL, 0, NULL, NULL, handle, h,
				MHD_OPTION_LISTEN_SOCKET, h->fd,
				MHD_OPTION_CONNECTION_LIMIT, 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!h->d) {
		lp_err_set(err, LP_EIO, "cannot start the HTTP server on '%s'",
			   addr);
		goto fail;
	}
	h->fd = -1;	/* MHD_stop_daemon closes it */
	return h;
fail:
	cli_httpd_stop(h);
	return NULL;
}

void
cli_httpd_publish(struct cli_httpd *h, const struct cli_mbuf *text,
		  const struct cli_mbuf *om)
{
	pthread_mutex_lock(&h->mu);
	h->text.len = 0;
	mb_grow(&h->text, text->len);
	memcpy(h->text.p, text->p, text->len + 1);
	h->text.len = text->len;
	h->om.len = 0;
	mb_grow(&h->om, om->len);
	memcpy(h->om.p, om->p, om->len + 1);
	h->om.len = om->len;
	pthread_mutex_unlock(&h->mu);
}

void
cli_httpd_stop(struct cli_httpd *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	if (h->fd >= 0)
		close(h->fd);
	pthread_mutex_destroy(&h->mu);
	cli_mbuf_release(&h->text);
	cli_mbuf_release(&h->om);
	free(h);
}
