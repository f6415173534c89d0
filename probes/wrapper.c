/*
 * Ruby text that runs inside the target.
 *
 * The safe-point job runs in trap context (POSTPONED_JOB|TRAP mask):
 * Mutex, Monitor, Logger and `require` of new files raise there, errors
 * are swallowed, and rb_eval_string evaluates in the *interrupted frame's*
 * local scope, so `x = 1` would overwrite a local of the target.  The job
 * therefore assigns nothing and only starts one thread; that thread loads
 * the helper program with Kernel.load(path, true), which gives it a fresh
 * top-level scope wrapped in an anonymous module.  Snippets reach the
 * helper as files it reads itself, so no snippet byte is ever spliced into
 * Ruby source.
 */
#include "probes/probes.h"

#include <stdio.h>
#include <string.h>

#include "common/xalloc.h"

int
probe__ruby_quote(char *buf, size_t len, const char *s, size_t n)
{
	size_t o = 0;

	if (len < 3)
		return -LP_EINVAL;
	buf[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t k;

		/* Escape everything that is not plain printable ASCII, and
		 * the characters that are special inside "...": \ " # */
		if (c == '\\' || c == '"' || c == '#')
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else {
			tmp[0] = (char)c;
			k = 1;
		}
		if (o + k + 2 > len)
			return -LP_EINVAL;
		memcpy(buf + o, tmp, k);
		o += k;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return (int)o;
}

int
probe__bootstrap(char *buf, size_t len, const char *path)
{
	/* The path appears twice (read, and as the program's __FILE__). */
	static const char head[] = "::Thread.new { begin; "
		"::RubyVM::InstructionSequence.compile(::File.binread(";
	static const char mid[] = "), ";
	static const char tail[] = ").eval; rescue ::Exception; end }";
	size_t hl = sizeof(head) - 1, ml = sizeof(mid) - 1;
	size_t tl = sizeof(tail) - 1, o;
	int q;

	if (len < hl + ml + tl + 6)
		return -LP_EINVAL;
	memcpy(buf, head, hl);
	o = hl;
	q = probe__ruby_quote(buf + o, len - o - ml - tl, path, strlen(path));
	if (q < 0)
		return q;
	o += (size_t)q;
	memcpy(buf + o, mid, ml);
	o += ml;
	if (len - o < tl + 3)
		return -LP_EINVAL;
	q = probe__ruby_quote(buf + o, len - o - tl, path, strlen(path));
	if (q < 0)
		return q;
	o += (size_t)q;
	memcpy(buf + o, tail, tl + 1);
	return (int)(o + tl);
}

char *
probe__helper_for(bool eval, size_t *len)
{
	const char *drop = eval ? "batches" : "eval";
	size_t n = strlen(probe__helper_rb), o = 0, dl = strlen(drop);
	const char *p = probe__helper_rb, *end = p + n;
	char *out = xmalloc(n + 1);
	bool skipping = false;

	/* line by line: a line "#<NAME" (after blanks) starts a section, a
	 * line "#>NAME" ends it; the markers themselves are dropped too */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl + 1 : end, *q = p;
		bool mark;

		while (q < e && *q == ' ')
			q++;
		mark = e - q > 2 && q[0] == '#' && (q[1] == '<' || q[1] == '>');
		if (mark && (size_t)(e - q) >= dl + 2 &&
		    !strncmp(q + 2, drop, dl))
			skipping = q[1] == '<';
		else if (!skipping && !mark) {
			memcpy(out + o, p, (size_t)(e - p));
			o += (size_t)(e - p);
		}
		p = e;
	}
	out[o] = '\0';
	if (len)
		*len = o;
	return out;
}

/*
 * The helper thread's program.  Protocol (one line each way):
 *   helper -> tool: {"hello":1,...}            after opening the channel
 *   tool -> helper: "run KIND IDX[,IDX..]|- N GC"   or "stop"
 *   eval sessions: file 'eval' holds "IDX inspect|json MAX"; after the
 *   hello, without being asked:
 *   helper -> tool: {"evaled":1,"class":..,"sent":N,..} then N raw bytes,
 *                   then it ends ({"bye":"done"})
 *   helper -> tool: {"kind":..,"calls":..,"secs":..,"gc":{..},"error":..}
 *   helper -> tool: {"bye":"WHY"}  last, as it ends: "done" after "stop",
 *                   "killed" (Thread#kill), or the exception that ended it
 * Lines "#<NAME" and "#>NAME" mark the parts only some sessions need
 * (batches: run/trace/gcstat/dump and lanes; eval): probe__helper_for()
 * leaves out the other part, so the target compiles less.
 * The helper opens the FIFOs write-only/read-only and non-blocking,
 * never with O_CREAT; when leakprobe goes away it sees EOF or EPIPE and
 * ends.  It works on Ruby 2.3 to 3.4.
 */
const char probe__helper_rb[] =
"th = Thread.current\n"
"th.name = 'leakprobe' if th.respond_to?(:name=)\n"
"th.report_on_exception = false if th.respond_to?(:report_on_exception=)\n"
"dir = File.dirname(__FILE__)\n"
"res = ack = dmp = alive = watchdog = tracing = why = nil\n"
"# Interrupts (the watchdog's Thread#kill) land only inside the work: the\n"
"# rescue and ensure clauses run whole (Thread.handle_interrupt's own\n"
"# idiom).  The watchdog, woken by the same death of leakprobe that gives\n"
"# this thread EPIPE or EOF, kills it as it ends; a kill in the ensure\n"
"# clause cut it short, and the channel's descriptors stayed open in\n"
"# the target until a major GC finalized the IO objects.\n"
"Thread.handle_interrupt(Object => :never) do\n"
"begin\n"
"  Thread.handle_interrupt(Object => :immediate) do\n"
"  res = File.open(File.join(dir, 'res'), File::WRONLY | File::NONBLOCK)\n"
"  ack = File.open(File.join(dir, 'ack'), File::RDONLY | File::NONBLOCK)\n"
"  started = res.write_nonblock(\"{\\\"started\\\":1}\\n\")\n"
"  # leakprobe holds the write end of 'alive' and never writes: EOF there\n"
"  # means leakprobe is gone, even in the middle of a long batch.\n"
"  alive = File.open(File.join(dir, 'alive'), File::RDONLY | File::NONBLOCK)\n"
"  me = Thread.current\n"
"  lanes = {}\n"
"  watchdog = Thread.new do\n"
"    Thread.current.name = 'leakprobe' if Thread.current.respond_to?(:name=)\n"
"    IO.select([alive])\n"
"    lanes.each_value { |_, _, t| t.kill if t }\n"
"    me.kill\n"
"  end\n"
"  dpath = File.join(dir, 'dump')\n"
"  # (a kill between open(2) and the assignment would lose the descriptor)\n"
"  Thread.handle_interrupt(Object => :never) do\n"
"    dmp = File.exist?(dpath) ? File.open(dpath, File::WRONLY | File::NONBLOCK) : nil\n"
"  end\n"
"  # blocking from here on: Ruby 3.4's dump_all raises 'full buffer' on a\n"
"  # pipe that is full for a moment instead of waiting (F_GETFL 3, F_SETFL 4)\n"
"  dmp.fcntl(4, dmp.fcntl(3) & ~File::NONBLOCK) if dmp\n"
"  esc = lambda do |s|\n"
"    s = s.to_s.dup.force_encoding(Encoding::UTF_8).scrub('?')\n"
"    '\"' + s.gsub(/[\"\\\\\\x00-\\x1f\\x7f]/) { |c| format('\\\\u%04x', c.ord) } + '\"'\n"
"  end\n"
"  json = lambda do |v|\n"
"    case v\n"
"    when Hash then '{' + v.map { |k, x| esc.(k) + ':' + json.(x) }.join(',') + '}'\n"
"    when Array then '[' + v.map { |x| json.(x) }.join(',') + ']'\n"
"    when Integer, true, false then v.to_s\n"
"    when Float then v.finite? ? v.to_s : 'null'\n"
"    when nil then 'null'\n"
"    else esc.(v)\n"
"    end\n"
"  end\n"
"  wr = lambda do |line|\n"
"    until line.empty?\n"
"      begin\n"
"        n = res.write_nonblock(line)\n"
"        line = line.byteslice(n, line.bytesize - n)\n"
"      rescue IO::WaitWritable, Errno::EINTR\n"
"        IO.select(nil, [res], nil, 30) or raise IOError, 'channel stalled'\n"
"      end\n"
"    end\n"
"  end\n"
"  put = lambda { |h| wr.(json.(h) + \"\\n\") }\n"
"  #<eval\n"
"  # eval --json: plain data (nil, true, false, numbers, strings,\n"
"  # symbols, arrays and hashes of them) as JSON without loading a\n"
"  # library into the target; anything else raises\n"
"  plain = lambda do |v|\n"
"    case v\n"
"    when Hash then '{' + v.map { |k, x| raise TypeError unless [String, Symbol, Integer].any? { |c| c === k }; esc.(k) + ':' + plain.(x) }.join(',') + '}'\n"
"    when Array then '[' + v.map { |x| plain.(x) }.join(',') + ']'\n"
"    when Integer, true, false, nil then json.(v)\n"
"    when Float then v.finite? ? v.to_s : raise(TypeError)\n"
"    when String, Symbol then esc.(v)\n"
"    else raise TypeError\n"
"    end\n"
"  end\n"
"  #>eval\n"
"  # one read buffer for the whole session: a fresh 4 KiB string per\n"
"  # command would be garbage that a stale stack slot can keep alive\n"
"  # through the next GC, and Ruby's bytes after a batch would depend on\n"
"  # it\n"
"  inbuf = ''.b\n"
"  rbuf = String.new(capacity: 4096).b rescue ''.b\n"
"  get = lambda do\n"
"    until inbuf.include?(\"\\n\")\n"
"      IO.select([ack])\n"
"      begin\n"
"        inbuf << ack.read_nonblock(4096, rbuf)\n"
"      rescue IO::WaitReadable, Errno::EINTR\n"
"      end\n"
"    end\n"
"    line, rest = inbuf.split(\"\\n\", 2)\n"
"    inbuf.replace(rest || ''.b)\n"
"    line\n"
"  end\n"
"  # Bytes held by Ruby objects (slots and the buffers they own), per\n"
"  # type: one walk of the heap (objspace, Ruby 2.0+), only after a GC\n"
"  sized = begin\n"
"    require 'objspace'\n"
"    ObjectSpace.respond_to?(:count_objects_size)\n"
"  rescue Exception\n"
"    false\n"
"  end\n"
"  # memsize is a buffer's capacity, but a buffer that fills capacity\n"
"  # it reserved earlier grows rss page by page while its capacity\n"
"  # stays (an Array 1.5 times larger when full, a String or a Hash's\n"
"  # entries twice): Ruby-held bytes count what is used.  Slack =\n"
"  # capacity - used, summed per type over the big buffers (4 KiB and\n"
"  # more; below that it is less than a page).  Sizes are read through\n"
"  # the core classes' own methods: a subclass's override never runs.\n"
"  # One walk of the Strings, Arrays and Hashes: 70 ms for 600,000 of\n"
"  # them, idle (a full GC of that heap: 25 ms); 120 ms on a loaded\n"
"  # machine.\n"
"  ssz, asz, hsz = String.instance_method(:bytesize), Array.instance_method(:size),\n"
"                  Hash.instance_method(:size)\n"
"  bc = ssz.respond_to?(:bind_call)\n"
"  # Also the buffer that grew most since the last walk (of those big\n"
"  # at both): its object id, class, bytes in use before and after, and\n"
"  # where it was allocated when allocations are traced.\n"
"  bigs = {}\n"
"  kls = Kernel.instance_method(:class)\n"
"  mnm = Module.instance_method(:name)\n"
"  slack = lambda do\n"
"    sl = [0, 0, 0]\n"
"    now = {}\n"
"    top = nil\n"
"    big = lambda do |o, t, x|\n"
"      x = 0 if x < 0\n"
"      sl[t] += x\n"
"      u = ObjectSpace.memsize_of(o) - x\n"
"      id = o.__id__\n"
"      now[id] = u\n"
"      was = bigs[id]\n"
"      top = [id, was, u, o] if was && u > was && (!top || u - was > top[2] - top[1])\n"
"    end\n"
"    begin\n"
"      ObjectSpace.each_object(String) do |o|\n"
"        n = bc ? ssz.bind_call(o) : ssz.bind(o).call\n"
"        next if n < 4096\n"
"        big.(o, 0, ObjectSpace.memsize_of(o) - 41 - n)\n"
"      end\n"
"      ObjectSpace.each_object(Array) do |o|\n"
"        n = bc ? asz.bind_call(o) : asz.bind(o).call\n"
"        next if n < 512\n"
"        big.(o, 1, ObjectSpace.memsize_of(o) - 40 - 8 * n)\n"
"      end\n"
"      # entries of 24 B, a power of two of them; the bins are\n"
"      # cleared (touched) when allocated and count as used\n"
"      ObjectSpace.each_object(Hash) do |o|\n"
"        n = bc ? hsz.bind_call(o) : hsz.bind(o).call\n"
"        next if n < 170\n"
"        cap = 1\n"
"        cap <<= 1 while cap < n\n"
"        big.(o, 2, [24 * (cap - n), ObjectSpace.memsize_of(o) - 40 - 24 * n].min)\n"
"      end\n"
"      bigs = now\n"
"      if top\n"
"        o = top.pop\n"
"        c = bc ? kls.bind_call(o) : kls.bind(o).call\n"
"        top << (bc ? mnm.bind_call(c) : mnm.bind(c).call).to_s\n"
"        f = (ObjectSpace.allocation_sourcefile(o) rescue nil)\n"
"        top << (f ? \"#{f}:#{ObjectSpace.allocation_sourceline(o)}\" : nil)\n"
"        o = nil\n"
"      end\n"
"    rescue Exception\n"
"      sl = [0, 0, 0]\n"
"      top = nil\n"
"    end\n"
"    [sl, top]\n"
"  end\n""  gcstat = lambda do |sizes = false|\n"
"    s = GC.stat\n"
"    h = { 'live_slots' => s[:heap_live_slots], 'pages' => s[:heap_allocated_pages],\n"
"      'allocated' => s[:total_allocated_objects], 'freed' => s[:total_freed_objects],\n"
"      'malloc_increase' => s[:malloc_increase_bytes], 'count' => s[:count],\n"
"      'major' => s[:major_gc_count] }\n"
"    if sizes && sized\n"
"      c = ObjectSpace.count_objects_size\n"
"      sl, top = slack.()\n"
"      h['rb_bytes'] = c[:TOTAL] - sl[0] - sl[1] - sl[2]\n"
"      h['rb_types'] = [(c[:T_STRING] || 0) - sl[0], (c[:T_ARRAY] || 0) - sl[1],\n"
"                       (c[:T_HASH] || 0) - sl[2],\n"
"                       c[:T_OBJECT] || 0, c[:T_DATA] || 0, c[:T_STRUCT] || 0]\n"
"      h['rb_grew'] = top if top\n"
"    end\n"
"    h\n"
"  end\n"
"  errh = lambda do |e|\n"
"    { 'class' => e.class.name, 'message' => (e.message rescue '?'),\n"
"      'backtrace' => (e.backtrace || []).first(20) }\n"
"  end\n"
"  snippets = []\n"
"  errors = []\n"
"  nsn = 0\n"
"  while File.exist?(path = File.join(dir, \"snippet.#{nsn}.rb\"))\n"
"    begin\n"
"      # the watchdog's kill must not land between open(2) and the IO\n"
"      # object that closes it: the descriptor would stay open for good\n"
"      src = Thread.handle_interrupt(Object => :never) { File.binread(path) }\n"
"      src.force_encoding(Encoding::UTF_8)\n"
"      snippets << RubyVM::InstructionSequence.compile(src, \"(leakprobe snippet #{nsn})\", '(leakprobe)', 1)\n"
"    rescue Exception => e\n"
"      snippets << nil\n"
"      errors << errh.(e).merge('snippet' => nsn)\n"
"    end\n"
"    nsn += 1\n"
"  end\n"
"  # commands given with the session, run before any read from the tool\n"
"  queue = []\n"
"  #<eval\n"
"  # an eval session's one eval comes with the snippets; then it ends\n"
"  epath = File.join(dir, 'eval')\n"
"  queue << ['eval', *File.read(epath).split(' ')] << ['stop'] if File.exist?(epath)\n"
"  #>eval\n"
"  #<batches\n"
"  noop = RubyVM::InstructionSequence.compile('nil', '(leakprobe control)', '(leakprobe)', 1)\n"
"  lists = {}\n"
"  #>batches\n"
"  put.({ 'hello' => 1, 'ruby' => RUBY_DESCRIPTION, 'pid' => Process.pid,\n"
"         'snippets' => snippets.size, 'errors' => errors, 'gc' => gcstat.() })\n"
"  #<batches\n"
"  # Lane threads get their queues as block parameters: never share a\n"
"  # captured variable between threads.\n"
"  new_lane = lambda do |qi, qo|\n"
"    Thread.new do\n"
"      Thread.current.name = 'leakprobe' if Thread.current.respond_to?(:name=)\n"
"      ok = false\n"
"      begin\n"
"        while (j = qi.pop); qo << j.call; end\n"
"        ok = true\n"
"      ensure\n"
"        # a snippet that ends its thread (Thread.current.kill) ends\n"
"        # the lane: say so, or the helper would wait for it forever\n"
"        qo << :lane_ended unless ok\n"
"      end\n"
"    end\n"
"  end\n"
"  in_lane = lambda do |lane, job|\n"
"    return job.call if lane == 0\n"
"    q = (lanes[lane] ||= [Queue.new, Queue.new])\n"
"    q[2] ||= new_lane.(q[0], q[1])\n"
"    q[0] << job\n"
"    r = q[1].pop\n"
"    # the snippet ended its thread: end ours the same way\n"
"    Thread.current.kill if r == :lane_ended\n"
"    r\n"
"  end\n"
"  #>batches\n"
"  begin\n"
"  loop do\n"
"    cmd = queue.shift || get.().split(' ')\n"
"    case cmd[0]\n"
"    #<batches\n"
"    when 'run'\n"
"      nil\n"
"    when 'trace'\n"
"      begin\n"
"        Thread.handle_interrupt(Object => :never) { require 'objspace' }\n"
"        if cmd[1] == 'on'\n"
"          ObjectSpace.trace_object_allocations_start\n"
"          tracing = cmd[2] == 'persist' ? :persist : :ours\n"
"        else\n"
"          ObjectSpace.trace_object_allocations_stop\n"
"          tracing = nil\n"
"        end\n"
"        put.({ 'trace' => cmd[1], 'gc' => gcstat.() })\n"
"      rescue Exception => e\n"
"        put.({ 'trace' => cmd[1], 'error' => errh.(e) })\n"
"      end\n"
"      next\n"
"    when 'gcstat'\n"
"      # Report GC.stat every interval until leakprobe goes away (EPIPE\n"
"      # or a stalled channel end this loop and the thread).\n"
"      iv = [cmd[1].to_f, 0.01].max\n"
"      loop do\n"
"        put.({ 'gcstat' => 1, 'gc' => gcstat.() })\n"
"        # wait, but end at once when leakprobe closes its end\n"
"        if IO.select([ack], nil, nil, iv)\n"
"          ack.read_nonblock(4096)\n"
"          break\n"
"        end\n"
"      end\n"
"    when 'dump'\n"
"      begin\n"
"        raise IOError, 'no dump channel' unless dmp\n"
"        Thread.handle_interrupt(Object => :never) { require 'objspace' }\n"
"        GC.start(full_mark: true, immediate_sweep: true)\n"
"        t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)\n"
"        ObjectSpace.dump_all(output: dmp)\n"
"        dmp.flush\n"
"        put.({ 'dumped' => 1, 'secs' => Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0,\n"
"               'gc' => gcstat.() })\n"
"      rescue Exception => e\n"
"        put.({ 'dumped' => 0, 'error' => errh.(e) })\n"
"      end\n"
"      next\n"
"    #>batches\n"
"    #<eval\n"
"    when 'eval'\n"
"      # the user's frames only: up to the first of the helper's own\n"
"      ebt = lambda { |bt| bt.take_while { |l| !l.start_with?(dir) } }\n"
"      # eval IDX inspect|json MAX: snippet IDX once, no GC.  One line\n"
"      # ('sent' = how many bytes follow), then those bytes, raw, in\n"
"      # chunks on the same channel.\n"
"      begin\n"
"        q = snippets[cmd[1].to_i] or raise ArgumentError, 'snippet did not compile'\n"
"        t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)\n"
"        v = q.eval\n"
"        secs = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0\n"
"      rescue Exception => e\n"
"        h = errh.(e)\n"
"        h['backtrace'] = ebt.(h['backtrace'])\n"
"        put.({ 'evaled' => 0, 'error' => h })\n"
"        next\n"
"      end\n"
"      begin\n"
"        cls = (::Kernel.instance_method(:class).bind(v).call.name rescue nil) || '?'\n"
"        s = nil\n"
"        if cmd[2] == 'json'\n"
"          if defined?(::JSON) && ::JSON.respond_to?(:generate)\n"
"            s = begin; ::JSON.generate(v); rescue Exception; nil; end\n"
"          end\n"
"          s ||= begin; plain.(v); rescue Exception; nil; end\n"
"        end\n"
"        fmt = s ? 'json' : 'inspect'\n"
"        s ||= v.inspect.to_s\n"
"        total = s.bytesize\n"
"        max = cmd[3].to_i\n"
"        s = s.byteslice(0, max) if total > max\n"
"        # a cut JSON text is no JSON: send it as a JSON string\n"
"        s = esc.(s) if cmd[2] == 'json' && (fmt == 'inspect' || total > max)\n"
"        # no .b: bytes are written as they are, and a copy would double\n"
"        # the memory a long value takes in the target\n"
"      rescue Exception => e\n"
"        h = errh.(e)\n"
"        h['message'] = \"while inspecting the result: #{h['message']}\"\n"
"        h['backtrace'] = ebt.(h['backtrace'])\n"
"        put.({ 'evaled' => 0, 'error' => h })\n"
"        next\n"
"      end\n"
"      put.({ 'evaled' => 1, 'class' => cls, 'format' => fmt, 'bytes' => total,\n"
"             'cut' => total > max, 'sent' => s.bytesize, 'secs' => secs })\n"
"      off = 0\n"
"      while off < s.bytesize\n"
"        wr.(s.byteslice(off, 65536))\n"
"        off += 65536\n"
"      end\n"
"      next\n"
"    #>eval\n"
"    else\n"
"      why = 'done'\n"
"      break\n"
"    end\n"
"    #<batches\n"
"    # a control batch runs a no-op snippet the same way as a measured\n"
"    # one: the helper's own state (its stack, which the GC scans\n"
"    # conservatively) must not differ between the two\n"
"    # (the lists are made once: a split per measured batch would be\n"
"    # garbage a stale stack slot keeps alive through the GC, after\n"
"    # measured batches only)\n"
"    list = (lists[cmd[2]] ||= cmd[2] == '-' ? [noop] : cmd[2].split(',').map { |k| snippets[k.to_i] })\n"
"    n = cmd[3].to_i\n"
"    batch = lambda do\n"
"      done = 0\n"
"      err = nil\n"
"      t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)\n"
"      begin\n"
"        raise ArgumentError, 'snippet did not compile' if list.include?(nil)\n"
"        if list.empty?\n"
"          n.times { done += 1 }\n"
"        elsif list.size == 1\n"
"          q = list[0]\n"
"          n.times { q.eval; done += 1 }\n"
"        else\n"
"          n.times { list.each { |x| x.eval }; done += 1 }\n"
"        end\n"
"      rescue Exception => e\n"
"        err = errh.(e)\n"
"      end\n"
"      secs = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0\n"
"      GC.start(full_mark: true, immediate_sweep: true) if cmd[4] == '1'\n"
"      [done, secs, err]\n"
"    end\n"
"    done, secs, err = in_lane.(cmd[5].to_i, batch)\n"
"    put.({ 'kind' => cmd[1], 'calls' => done, 'secs' => secs, 'gc' => gcstat.(cmd[4] == '1'), 'error' => err })\n"
"    #>batches\n"
"  end\n"
"  ensure\n"
"    lanes.each_value { |qi, _, t| qi << nil; t.join(5) if t }\n"
"  end\n"
"  end\n"
"rescue Exception => e\n"
"  # channel closed or broken (leakprobe is gone): leave quietly\n"
"  why = \"#{e.class}: #{e.message}\" rescue why = 'exception'\n"
"ensure\n"
"  # allocation tracing started for this session ends with it, however\n"
"  # it ends (heapdump --trace-allocations asks for it to persist);\n"
"  # first, before leakprobe can see EOF and go\n"
"  (ObjectSpace.trace_object_allocations_stop rescue nil) if tracing == :ours\n"
"  # the watchdog ends before leakprobe can see EOF: the next run then\n"
"  # reuses the cached threads instead of growing the target's maps\n"
"  if watchdog && watchdog != Thread.current\n"
"    watchdog.kill\n"
"    begin\n"
"      watchdog.join(1)\n"
"    rescue Exception\n"
"    end\n"
"  end\n"
"  # say why, if anyone listens: JSON-safe ASCII\n"
"  bye = ((why || 'killed').to_s.b[0, 200].gsub(/[^ -~]/n, '?').tr('\"\\\\', \"''\") rescue 'exception')\n"
"  (res.write_nonblock(\"{\\\"bye\\\":\\\"#{bye}\\\"}\\n\") rescue nil) if res\n"
"  # res last: leakprobe waits for its EOF before it lets the next run\n"
"  # start, and the less this thread still has to do then, the less\n"
"  # likely that run's helper finds it alive (and gets a new stack)\n"
"  [ack, dmp, alive, res].each do |f|\n"
"    begin\n"
"      f.close if f\n"
"    rescue Exception\n"
"    end\n"
"  end\n"
"end\n"
"end\n";
