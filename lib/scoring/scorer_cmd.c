/*
 * scorer_cmd.c: the --cmd scorer, a child that reads a JSON line per record
 * and answers one number per line, in order; see scorer.h.
 *
 * Records stream to the child while its answers are read back: up to
 * window records are out without an answer, so a scorer that reads a
 * batch before it answers (a reward-model server) is kept busy, and one
 * that answers line by line costs a pipe's round trip per window instead
 * of per record.  A window of 1 is lockstep.  Both directions are polled
 * together, so a child that writes before it has read a whole (long)
 * record cannot deadlock with us, and writes happen with SIGPIPE ignored,
 * so that a child that dies shows up as EPIPE, reported with the record's
 * number, instead of killing score silently.
 *
 * Answers are matched to records in order.  A child may answer a record
 * once it has read (some of) it, never before: output beyond one line per
 * record sent is an extra answer, and taking it for the next record's
 * would shift every reward after it.  So an answer that arrives while the
 * pipe still holds every byte of its record (FIONREAD; where the pipe
 * cannot say, the check is skipped) ends the program naming that record;
 * and once every record sent is answered, whatever else the child has
 * written by then is read without waiting, and any line of it ends the
 * program naming the last record, before it is written.  An extra line
 * written later shows at the latest after the last record (cmd_finish).
 *
 * Whatever ends the run (a bad record, a child that stops), the records
 * answered before are written first: cmd_drain closes the child's stdin,
 * so a batching child answers its last partial batch, and takes what
 * answers come.
 */
#include "config.h"

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scoring/scorer.h"
#include "util/util.h"

/* A record sent (or queued) and not yet answered. */
struct pending {
	struct rec r;
	uint64_t start;		/* where its line starts in the stream sent */
};

struct cmd_child {
	pid_t pid;
	int to;			/* the child's stdin; -1 once closed */
	int from;		/* the child's stdout; -1 at its end */
	struct strbuf in;	/* read from the child, not yet used */
	struct strbuf out;	/* lines not yet written to the child */
	size_t outoff;		/* of out, written already */
	uint64_t queued;	/* bytes of the stream put in out, ever */
	uint64_t written;	/* bytes of it written to the child */
	int broken;		/* its stdin is closed: only read what is left */
	int window;		/* records out without an answer, at most */
	int open;		/* of them, allowed now (grows to window) */
	double timeout;		/* seconds without progress; 0: wait */
	struct pending *q;	/* (window) ring of the unanswered, oldest at
				 * head */
	int head, npend;
	uint64_t asked;		/* records sent */
	uint64_t answered;	/* answers taken */
	cmd_done_fn *done;	/* what an answered record goes to */
	void *arg;
};

struct cmd_child *
cmd_start(const char *command, int window, double timeout, cmd_done_fn *done,
    void *arg)
{
	struct cmd_child *c = xcalloc(1, sizeof(*c));

	c->window = window > 0 ? window : 1;
	c->open = 1;
	c->timeout = timeout;
	c->q = xcalloc((size_t)c->window, sizeof(*c->q));
	c->done = done;
	c->arg = arg;
	int tochild[2], fromchild[2];

	if (pipe2(tochild, O_CLOEXEC) == -1 ||
	    pipe2(fromchild, O_CLOEXEC) == -1)
		err(EXIT_DATA, "pipe");
	fflush(NULL);
	switch ((c->pid = fork())) {
	case -1:
		err(EXIT_DATA, "fork");
	case 0:
		if (dup2(tochild[0], 0) == -1 || dup2(fromchild[1], 1) == -1)
			_exit(127);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(tochild[0]);
	close(fromchild[1]);
	c->to = tochild[1];
	c->from = fromchild[0];
	/* Never block on a full pipe: poll decides who goes next. */
	if (fcntl(c->to, F_SETFL, fcntl(c->to, F_GETFL) | O_NONBLOCK) == -1)
		err(EXIT_DATA, "fcntl");
	sb_init(&c->in);
	sb_init(&c->out);
	return c;
}

/* How the child ended, for messages; waits for it. */
static void
child_status(struct cmd_child *c, int patient, char *buf, size_t bufsz)
{
	int st;
	pid_t p;

	if (c->to != -1) {
		close(c->to);
		c->to = -1;
	}
	/* It closed its stdout but may still run: give it a moment. */
	for (int i = 0; i < 50 || patient; i++) {
		while ((p = waitpid(c->pid, &st, WNOHANG)) == -1 &&
		    errno == EINTR)
			;
		if (p != 0)
			break;
		usleep(20000);
	}
	if (p == 0) {
		kill(c->pid, SIGTERM);
		while (waitpid(c->pid, &st, 0) == -1 && errno == EINTR)
			;
		snprintf(buf, bufsz, "closed its output");
	} else if (p == -1)
		snprintf(buf, bufsz, "ended (%s)", strerror(errno));
	else if (WIFEXITED(st))
		snprintf(buf, bufsz, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, bufsz, "was killed by signal %d (%s)",
		    WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, bufsz, "ended");
	c->pid = -1;
}

static void __attribute__((noreturn))
child_gone(struct cmd_child *c, const struct rec *r)
{
	char how[128];

	child_status(c, 0, how, sizeof(how));
	rec_die(r, NULL, "--cmd: the command %s before answering", how);
}

/* A write to the child that cannot raise SIGPIPE. */
static ssize_t
write_nosig(int fd, const void *p, size_t n)
{
	struct sigaction ign, old;
	ssize_t w;
	int e;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	w = write(fd, p, n);
	e = errno;
	sigaction(SIGPIPE, &old, NULL);
	errno = e;
	return w;
}

/* Append s[0..len) for a message, cut short and with controls escaped. */
static void
quote(struct strbuf *q, const char *s, size_t len)
{
	for (size_t i = 0; i < len && i < 60; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			sb_printf(q, "\\x%02x", ch);
		else
			sb_addc(q, (char)ch);
	}
	if (len > 60)
		sb_adds(q, "...");
}

/*
 * Where the child's output from offset off holds a line or the start of
 * one (blanks alone are not: they may lead the next answer), or NULL.
 */
static const char *
more_output(const struct strbuf *b, size_t off)
{
	for (size_t i = off; i < b->len; i++)
		if (b->data[i] == '\n' || !isspace((unsigned char)b->data[i]))
			return b->data + i;
	return NULL;
}

/*
 * Read what the child has written so far, without waiting, until it is
 * all in or output beyond offset off shows.  Its end of output is left
 * for the next read to find.
 */
static void
read_ready(struct cmd_child *c, size_t off)
{
	struct pollfd pf;
	ssize_t got;

	while (more_output(&c->in, off) == NULL) {
		pf.fd = c->from;
		pf.events = POLLIN;
		if (poll(&pf, 1, 0) != 1)
			return;
		sb_reserve(&c->in, 4096);
		got = read(c->from, c->in.data + c->in.len,
		    c->in.cap - c->in.len - 1);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1)
			err(EXIT_DATA, "--cmd: reading from the command");
		if (got == 0)
			return;
		c->in.len += (size_t)got;
		c->in.data[c->in.len] = 0;
	}
}

/*
 * Whether the answer line just in was written before the child read a
 * byte of the oldest unanswered record: the pipe still holds all of it,
 * so the line answers an earlier record twice.  Reading only goes on, so
 * what holds now held when it wrote.  Where the pipe cannot say
 * (FIONREAD), no answer is taken for premature.
 */
static int
premature(struct cmd_child *c)
{
	int unread;

	if (c->broken || c->to == -1 || ioctl(c->to, FIONREAD, &unread) == -1)
		return 0;
	return c->written - (uint64_t)unread <= c->q[c->head].start;
}

/*
 * The command answered more than it was sent: x is the first line too
 * many (NULL: the first line in, the answer to an earlier record).
 */
static void __attribute__((noreturn))
extra_answer(struct cmd_child *c, const struct rec *r, const char *x)
{
	const char *nl = memchr(c->in.data, '\n', c->in.len);
	size_t len = nl ? (size_t)(nl - c->in.data) : c->in.len;
	struct strbuf q;

	sb_init(&q);
	sb_adds(&q, "\"");
	quote(&q, c->in.data, len);
	if (x == NULL)
		sb_adds(&q, "\" came before it read this record");
	else {
		const char *xe = memchr(x, '\n',
		    c->in.len - (size_t)(x - c->in.data));
		sb_adds(&q, "\", then \"");
		quote(&q, x, xe ? (size_t)(xe - x) :
		    c->in.len - (size_t)(x - c->in.data));
		sb_adds(&q, "\"");
	}
	rec_die(r, NULL, "--cmd: the command answered more lines than "
	    "records sent (%s)", q.data);
}

/* ------------------------------------------------------------------------ */
/* The stream */

/* The oldest unanswered record. */
static const struct rec *
oldest(const struct cmd_child *c)
{
	return &c->q[c->head].r;
}

/*
 * Take the complete answer lines in c->in, each for the oldest unanswered
 * record, and hand those records on.
 */
static void
take_answers(struct cmd_child *c)
{
	char *nl;

	while (c->npend > 0 && (nl = c->in.len == 0 ? NULL :
	    memchr(c->in.data, '\n', c->in.len)) != NULL) {
		struct pending *pd = &c->q[c->head];
		size_t len = (size_t)(nl - c->in.data);
		double v;

		/* Every record sent is answered: nothing more may have come. */
		if (c->npend == 1) {
			const char *x;
			read_ready(c, len + 1);
			if ((x = more_output(&c->in, len + 1)) != NULL)
				extra_answer(c, &pd->r, x);
		}
		if (parse_number_line(c->in.data, len, &v) != 0) {
			struct strbuf q;
			sb_init(&q);
			quote(&q, c->in.data, len);
			rec_die(&pd->r, NULL, "--cmd: the command answered "
			    "\"%s\", not a number", q.data ? q.data : "");
		}
		c->in.len -= len + 1;
		memmove(c->in.data, c->in.data + len + 1, c->in.len);
		c->in.data[c->in.len] = 0;
		c->answered++;
		c->head = (c->head + 1) % c->window;
		c->npend--;
		c->done(&pd->r, v, c->arg);
		rec_free(&pd->r);
	}
}

/*
 * One round of I/O: write what the pipe takes, read what the child says,
 * take the answers.  Waits up to ms (-1: as long as it takes) for one of
 * them; returns 0 when nothing happened in that time.
 */
static int
pump(struct cmd_child *c, int ms)
{
	struct pollfd pf[2];
	int n = 0, iw = -1, ir = -1;

	if (c->to != -1 && c->outoff < c->out.len) {
		pf[n].fd = c->to;
		pf[n].events = POLLOUT;
		iw = n++;
	}
	if (c->from != -1) {
		pf[n].fd = c->from;
		pf[n].events = POLLIN;
		ir = n++;
	}
	if (n == 0)
		return 0;
	int r = poll(pf, n, ms);
	if (r == -1) {
		if (errno == EINTR)
			return 1;
		err(EXIT_DATA, "poll");
	}
	if (r == 0)
		return 0;
	if (iw >= 0 && pf[iw].revents) {
		ssize_t w = write_nosig(c->to, c->out.data + c->outoff,
		    c->out.len - c->outoff);
		/* It stopped reading, but may have answered before it did:
		 * read on, and fail at its end of output. */
		if (w == -1 && errno == EPIPE) {
			c->broken = 1;
			close(c->to);
			c->to = -1;
		} else if (w == -1 && errno != EAGAIN && errno != EINTR)
			err(EXIT_DATA, "--cmd: writing to the command");
		else if (w > 0) {
			c->outoff += (size_t)w;
			c->written += (uint64_t)w;
			if (c->outoff == c->out.len) {
				sb_clear(&c->out);
				c->outoff = 0;
			}
		}
	}
	if (ir >= 0 && pf[ir].revents) {
		sb_reserve(&c->in, 4096);
		ssize_t got = read(c->from, c->in.data + c->in.len,
		    c->in.cap - c->in.len - 1);
		if (got == -1 && errno != EINTR && errno != EAGAIN)
			err(EXIT_DATA, "--cmd: reading from the command");
		if (got == 0) {
			if (c->npend > 0)
				child_gone(c, oldest(c));
			close(c->from);
			c->from = -1;
		}
		if (got > 0) {
			c->in.len += (size_t)got;
			c->in.data[c->in.len] = 0;
			if (c->npend > 0 && memchr(c->in.data + c->in.len -
			    got, '\n', (size_t)got) != NULL && premature(c))
				extra_answer(c, oldest(c), NULL);
		}
	}
	take_answers(c);
	return 1;
}

/* The command said nothing for --timeout's seconds: it is stopped. */
static void __attribute__((noreturn))
timed_out(struct cmd_child *c)
{
	kill(c->pid, SIGTERM);
	rec_die(oldest(c), NULL, "--cmd: no answer from the command in %g s "
	    "(--timeout)", c->timeout);
}

/* pump until something happens, or --timeout's seconds pass. */
static void
pump_wait(struct cmd_child *c)
{
	if (!pump(c, c->timeout > 0 ? (int)(c->timeout * 1000) : -1))
		timed_out(c);
}

/*
 * Whether the child has read all we sent without answering: it waits
 * for more input (a batch), or it computes.  Where the pipe cannot say,
 * as if it waited.
 */
static int
starving(struct cmd_child *c)
{
	int unread;

	if (c->to == -1 || c->outoff < c->out.len)
		return 0;
	return ioctl(c->to, FIONREAD, &unread) == -1 || unread == 0;
}

void
cmd_send(struct cmd_child *c, struct rec *r)
{
	msgpack_object o = rec_as_object(r);
	size_t before = c->out.len;
	int e;

	/*
	 * The window opens as the child shows it needs it: records go one
	 * at a time while it answers each before it reads the next (so an
	 * extra line is caught at the record it follows), and the allowance
	 * doubles, up to --window, each time it has read everything sent
	 * and still not answered after a moment (a batching scorer, or a
	 * slow one, which more records in flight keep busy).
	 */
	double since = pp_now();
	while (c->npend >= c->open) {
		if (c->npend == c->window) {
			pump_wait(c);
			continue;
		}
		if (pump(c, 20)) {
			since = pp_now();
			continue;
		}
		if (starving(c))
			c->open = 2 * c->open < c->window ? 2 * c->open :
			    c->window;
		else if (c->timeout > 0 && pp_now() - since > c->timeout)
			timed_out(c);
	}
	if ((e = json_emit(&c->out, &o)) != 0) {
		c->out.len = before;
		cmd_drain(c);
		rec_die(r, NULL, "--cmd: cannot write the record as JSON: %s",
		    json_emit_error(e));
	}
	sb_addc(&c->out, '\n');
	int idle = c->npend == 0;
	struct pending *pd = &c->q[(c->head + c->npend) % c->window];
	pd->r = *r;		/* the record is ours now */
	pd->start = c->queued;
	c->queued += c->out.len - before;
	c->npend++;
	c->asked++;
	/* Output while nothing was asked: an answer before its record. */
	if (idle && more_output(&c->in, 0) != NULL)
		extra_answer(c, &pd->r, NULL);
	if (c->broken) {	/* nobody reads: only answers already out */
		c->written = c->queued;
		sb_clear(&c->out);
		c->outoff = 0;
	}
	pump(c, 0);
}

void
cmd_drain(struct cmd_child *c)
{
	/* Send what is queued, then end its input: a batching command
	 * answers its last, partial batch. */
	while (c->to != -1 && c->outoff < c->out.len)
		pump_wait(c);
	if (c->to != -1) {
		close(c->to);
		c->to = -1;
	}
	while (c->npend > 0)
		pump_wait(c);
}

void
cmd_finish(struct cmd_child *c)
{
	char how[128];
	size_t extra = 0;
	ssize_t got;
	char buf[4096];

	cmd_drain(c);
	for (size_t i = 0; i < c->in.len; i++)
		extra += !isspace((unsigned char)c->in.data[i]);
	/* Whatever the child still says is more than it was asked for. */
	while (c->from != -1 && (got = read(c->from, buf, sizeof(buf))) != 0) {
		if (got == -1) {
			if (errno == EINTR)
				continue;
			err(EXIT_DATA, "--cmd: reading from the command");
		}
		for (ssize_t i = 0; i < got; i++)
			extra += !isspace((unsigned char)buf[i]);
	}
	if (c->from != -1)
		close(c->from);
	c->from = -1;
	child_status(c, 1, how, sizeof(how));
	if (extra > 0)
		errx(EXIT_DATA, "--cmd: the command answered more lines than "
		    "records sent (%llu records)", (unsigned long long)c->asked);
	if (strcmp(how, "exited with status 0") != 0)
		errx(EXIT_DATA, "--cmd: the command %s after %llu records", how,
		    (unsigned long long)c->asked);
	sb_free(&c->in);
	sb_free(&c->out);
	free(c->q);
	free(c);
}
