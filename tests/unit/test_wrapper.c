/*
 * The text leakprobe puts into a target: the bootstrap job and the helper
 * program.  Hostile paths must come out as one inert Ruby literal, the
 * bootstrap must assign nothing (it runs in the interrupted frame's
 * scope), and the helper must be valid Ruby.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probes/probes.h"

static void
test_quote_plain(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(probe__ruby_quote(buf, sizeof(buf), "/tmp/a", 6), 8);
	assert_string_equal(buf, "\"/tmp/a\"");
}

static void
test_quote_hostile(void **state)
{
	static const char in[] = "a\"b\\c#{x}\n\x01\xff'";
	char buf[128];

	(void)state;
	assert_true(probe__ruby_quote(buf, sizeof(buf), in,
				      sizeof(in) - 1) > 0);
	/* quotes, backslashes and interpolation are escaped; control and
	 * non-ASCII bytes become \xNN */
	assert_string_equal(buf, "\"a\\\"b\\\\c\\#{x}\\x0a\\x01\\xff'\"");
}

static void
test_quote_nul_byte(void **state)
{
	char buf[32];

	(void)state;
	assert_true(probe__ruby_quote(buf, sizeof(buf), "a\0b", 3) > 0);
	assert_string_equal(buf, "\"a\\x00b\"");
}

static void
test_quote_too_small(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(probe__ruby_quote(buf, sizeof(buf), "/tmp/abcdef",
					   11), -LP_EINVAL);
	assert_int_equal(probe__ruby_quote(buf, 2, "", 0), -LP_EINVAL);
}

/* Outside the quoted path the bootstrap must not assign anything: it runs
 * with the interrupted frame's locals in scope. */
static void
test_bootstrap_assigns_nothing(void **state)
{
	char buf[1024], outside[1024];
	size_t o = 0;
	bool in = false;

	(void)state;
	assert_true(probe__bootstrap(buf, sizeof(buf),
				     "/tmp/x = 1\"; y = 2 #/helper.rb") > 0);
	/* everything outside the string literals */
	for (const char *p = buf; *p; p++) {
		if (in && *p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '"') {
			in = !in;
			continue;
		}
		if (!in)
			outside[o++] = *p;
	}
	outside[o] = '\0';
	assert_false(in);
	assert_null(strchr(outside, '='));
	assert_non_null(strstr(outside, "InstructionSequence.compile("));
	assert_non_null(strstr(outside, ").eval;"));
	assert_non_null(strstr(outside, "rescue ::Exception"));
}

static void
test_bootstrap_too_long(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(probe__bootstrap(buf, sizeof(buf),
					  "/tmp/leakprobe.abcdef/helper.rb"),
			 -LP_EINVAL);
}

/* Ruby itself reads the literal back as the same bytes, and the helper
 * program parses.  Skipped when no ruby is installed. */
static const char *
ruby_bin(void)
{
	const char *r = getenv("RUBY");

	return r && *r ? r : "ruby";
}

static void
test_quote_roundtrip_in_ruby(void **state)
{
	static const char in[] = "p\"q\\r#{s}#@t#$u\n\x7f\xc3\xa9 end";
	char lit[256], cmd[512], out[256] = "";
	FILE *fp;

	(void)state;
	if (system("command -v ruby >/dev/null 2>&1") != 0)
		skip();
	assert_true(probe__ruby_quote(lit, sizeof(lit), in,
				      sizeof(in) - 1) > 0);
	fp = fopen("build-lit.rb", "w");
	assert_non_null(fp);
	fprintf(fp, "s = %s\nprint s.unpack1('H*')\n", lit);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "%s build-lit.rb", ruby_bin());
	fp = popen(cmd, "r");
	assert_non_null(fp);
	assert_non_null(fgets(out, sizeof(out), fp));
	pclose(fp);
	unlink("build-lit.rb");
	{
		char hex[256];
		size_t o = 0;

		for (size_t i = 0; i < sizeof(in) - 1; i++)
			o += (size_t)sprintf(hex + o, "%02x",
					     (unsigned char)in[i]);
		assert_string_equal(out, hex);
	}
}

static void
test_helper_is_valid_ruby(void **state)
{
	char cmd[256];
	FILE *fp;

	(void)state;
	if (system("command -v ruby >/dev/null 2>&1") != 0)
		skip();
	fp = fopen("build-helper.rb", "w");
	assert_non_null(fp);
	fputs(probe__helper_rb, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "%s -c build-helper.rb >/dev/null",
		 ruby_bin());
	assert_int_equal(system(cmd), 0);
	unlink("build-helper.rb");
	/* never creates files: no File::CREAT, no "w" modes */
	assert_null(strstr(probe__helper_rb, "CREAT"));
	assert_null(strstr(probe__helper_rb, "'w'"));
	assert_non_null(strstr(probe__helper_rb, "File::NONBLOCK"));
}

/* ruby -c on text; skipped without ruby */
static void
assert_valid_ruby(const char *text)
{
	char cmd[256];
	FILE *fp;

	fp = fopen("build-helper-part.rb", "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "%s -c build-helper-part.rb >/dev/null",
		 ruby_bin());
	assert_int_equal(system(cmd), 0);
	unlink("build-helper-part.rb");
}

static void
test_helper_for_sessions(void **state)
{
	size_t n1, n2;
	char *ev = probe__helper_for(true, &n1);
	char *all = probe__helper_for(false, &n2);

	(void)state;
	assert_int_equal(strlen(ev), n1);
	assert_int_equal(strlen(all), n2);
	/* eval sessions: eval and stop only */
	assert_non_null(strstr(ev, "when 'eval'"));
	assert_null(strstr(ev, "when 'run'"));
	assert_null(strstr(ev, "when 'dump'"));
	assert_null(strstr(ev, "in_lane"));
	/* the others: no eval */
	assert_null(strstr(all, "when 'eval'"));
	assert_non_null(strstr(all, "when 'run'"));
	assert_non_null(strstr(all, "when 'gcstat'"));
	assert_non_null(strstr(all, "in_lane"));
	/* no marker left, both smaller than the whole */
	assert_null(strstr(ev, "#<"));
	assert_null(strstr(all, "#>"));
	assert_true(n1 < strlen(probe__helper_rb));
	assert_true(n2 < strlen(probe__helper_rb));
	if (system("command -v ruby >/dev/null 2>&1") == 0) {
		assert_valid_ruby(ev);
		assert_valid_ruby(all);
	}
	free(ev);
	free(all);
}

/*
 * The helper's cleanup runs to its end even when the watchdog's kill
 * lands in it (leakprobe died: EOF or EPIPE ends the helper while the
 * watchdog, woken by the same death, kills it).  A kill that cut the
 * cleanup short left the channel's descriptors open in the target until
 * a major GC.  The harness hosts the helper in a ruby process, as the
 * bootstrap would, ends the session with EOF, and kills the helper from
 * another thread just as it joins its watchdog; GC is off, so only the
 * helper's own close can release the descriptors.
 */
static const char cleanup_rb[] =
"require 'tmpdir'\n"
"GC.disable\n"
"$armed = 0\n"
"class Thread\n"
"  alias_method :lp_join, :join\n"
"  def join(*a)\n"
"    me = Thread.current\n"
"    if $arm && me.name == 'leakprobe' && !equal?(me)\n"
"      $arm = false\n"
"      $armed += 1\n"
"      Thread.new { me.kill }.lp_join\n"
"    end\n"
"    lp_join(*a)\n"
"  end\n"
"end\n"
"src = File.binread(ARGV[0])\n"
"left = 0\n"
"Dir.mktmpdir do |base|\n"
"  3.times do |i|\n"
"    dir = File.join(base, \"leakprobe.#{i}\")\n"
"    Dir.mkdir(dir)\n"
"    %w[res ack alive].each { |f| File.mkfifo(File.join(dir, f)) }\n"
"    hp = File.join(dir, 'helper.rb')\n"
"    File.binwrite(hp, src)\n"
"    res = File.open(File.join(dir, 'res'), File::RDONLY | File::NONBLOCK)\n"
"    ack = File.open(File.join(dir, 'ack'), File::RDWR | File::NONBLOCK)\n"
"    alive = File.open(File.join(dir, 'alive'), File::RDWR | File::NONBLOCK)\n"
"    $arm = true\n"
"    t = Thread.new { begin; RubyVM::InstructionSequence.compile(File.binread(hp), hp).eval; rescue Exception; end }\n"
"    buf = +''\n"
"    until buf.include?('\"hello\"')\n"
"      IO.select([res], nil, nil, 10) or raise 'no hello'\n"
"      buf << res.read_nonblock(65536)\n"
"    end\n"
"    ack.close\n"
"    t.lp_join(10) or raise 'the helper did not end'\n"
"    res.close\n"
"    alive.close\n"
"    left += Dir.glob('/proc/self/fd/*').count { |f| (File.readlink(f) rescue '').start_with?(dir) }\n"
"  end\n"
"end\n"
"puts \"left #{left} armed #{$armed}\"\n";

static void
test_helper_cleanup_survives_kill(void **state)
{
	char cmd[256], out[128] = "";
	size_t n;
	char *helper;
	FILE *fp;

	(void)state;
	if (system("command -v ruby >/dev/null 2>&1") != 0)
		skip();
	if (access("/proc/self/fd", R_OK) != 0)
		skip();
	helper = probe__helper_for(false, &n);
	fp = fopen("build-cleanup-helper.rb", "w");
	assert_non_null(fp);
	fwrite(helper, 1, n, fp);
	fclose(fp);
	free(helper);
	fp = fopen("build-cleanup.rb", "w");
	assert_non_null(fp);
	fputs(cleanup_rb, fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "%s build-cleanup.rb "
		 "build-cleanup-helper.rb 2>&1", ruby_bin());
	fp = popen(cmd, "r");
	assert_non_null(fp);
	if (!fgets(out, sizeof(out), fp))
		out[0] = '\0';
	pclose(fp);
	unlink("build-cleanup.rb");
	unlink("build-cleanup-helper.rb");
	/* each of the 3 sessions was killed in its cleanup, and each
	 * closed all three of its descriptors anyway */
	assert_string_equal(out, "left 0 armed 3\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_plain),
		cmocka_unit_test(test_quote_hostile),
		cmocka_unit_test(test_quote_nul_byte),
		cmocka_unit_test(test_quote_too_small),
		cmocka_unit_test(test_bootstrap_assigns_nothing),
		cmocka_unit_test(test_bootstrap_too_long),
		cmocka_unit_test(test_quote_roundtrip_in_ruby),
		cmocka_unit_test(test_helper_is_valid_ruby),
		cmocka_unit_test(test_helper_for_sessions),
		cmocka_unit_test(test_helper_cleanup_survives_kill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
