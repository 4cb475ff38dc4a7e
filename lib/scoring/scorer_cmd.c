/*
 * scorer_cmd.c: the --cmd scorer, a child that reads a JSON line per record
 * and answers one number per line; see scorer.h.
 *
 * The child is fed and read in lockstep, one record at a time, because
 * many scripts answer a line only after reading one.  Both directions are
 * polled together so that a child which writes before it has read a whole
 * (long) record cannot deadlock with us, and writes happen with SIGPIPE
 * ignored so that a child that dies shows up as EPIPE, which we can report
 * with the record's number, instead of killing score silently.
 *
 * A child may answer a record once it has been sent (some of) it, never
 * before: output beyond one line per record sent is an extra answer, and
 * taking it for the next record's would shift every reward after it.  So
 * once a record's answer is in, whatever else the child has written by
 * then is read without waiting, and any line of it (or the start of one)
 * ends the program naming that record, before the record is written.  An
 * extra line the child writes later, after the next record went out,
 * cannot be told from that record's answer; it shows at the latest after
 * the last record (cmd_finish).  The rule counts records sent against
 * answers, not strict turns, so a child that reads several records before
 * answering keeps to it once score sends ahead.
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

struct cmd_child {
	pid_t pid;
	int to;			/* the child's stdin; -1 once closed */
	int from;		/* the child's stdout; -1 at its end */
	struct strbuf in;	/* read from the child, not yet used */
	struct strbuf line;	/* the JSON line being sent */
	int broken;		/* its stdin is closed: only read what is left */
	uint64_t asked;		/* records sent (or offered, once broken) */
	uint64_t answered;	/* answers taken */
};

struct cmd_child *
cmd_start(const char *command)
{
	struct cmd_child *c = xcalloc(1, sizeof(*c));
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
	sb_init(&c->line);
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
 * byte of the record, sent bytes of which are out: the pipe still holds
 * them all, so it answered an earlier record twice.  Reading only goes
 * on, so what holds now held when it wrote.  Where the pipe cannot say
 * (FIONREAD), no answer is taken for premature.
 */
static int
premature(struct cmd_child *c, size_t sent)
{
	int unread;

	if (c->broken || ioctl(c->to, FIONREAD, &unread) == -1)
		return 0;
	return (size_t)unread >= sent;
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

double
cmd_ask(struct cmd_child *c, const struct rec *r)
{
	msgpack_object o = rec_as_object(r);
	size_t sent = 0;
	char *nl;
	int e;

	sb_clear(&c->line);
	if ((e = json_emit(&c->line, &o)) != 0)
		rec_die(r, NULL, "--cmd: cannot write the record as JSON: %s",
		    json_emit_error(e));
	sb_addc(&c->line, '\n');
	if (c->broken)
		sent = c->line.len;
	c->asked++;

	/* Until the line is sent and a line has come back. */
	while (sent < c->line.len || (nl = c->in.len == 0 ? NULL :
	    memchr(c->in.data, '\n', c->in.len)) == NULL) {
		struct pollfd pf[2];
		int n = 0, iw = -1, ir = -1;
		if (sent < c->line.len) {
			pf[n].fd = c->to;
			pf[n].events = POLLOUT;
			iw = n++;
		}
		if (c->in.len == 0 || memchr(c->in.data, '\n', c->in.len) ==
		    NULL) {
			pf[n].fd = c->from;
			pf[n].events = POLLIN;
			ir = n++;
		}
		if (poll(pf, n, -1) == -1) {
			if (errno == EINTR)
				continue;
			err(EXIT_DATA, "poll");
		}
		if (iw >= 0 && pf[iw].revents) {
			ssize_t w = write_nosig(c->to, c->line.data + sent,
			    c->line.len - sent);
			/*
			 * It stopped reading, but may have answered before
			 * it did: read on, and fail at its end of output.
			 */
			if (w == -1 && errno == EPIPE) {
				c->broken = 1;
				sent = c->line.len;
				continue;
			}
			if (w == -1 && errno != EAGAIN && errno != EINTR)
				err(EXIT_DATA, "--cmd: writing to the command");
			if (w > 0)
				sent += (size_t)w;
		}
		if (ir >= 0 && pf[ir].revents) {
			sb_reserve(&c->in, 4096);
			ssize_t got = read(c->from, c->in.data + c->in.len,
			    c->in.cap - c->in.len - 1);
			if (got == -1 && errno != EINTR && errno != EAGAIN)
				err(EXIT_DATA, "--cmd: reading from the "
				    "command");
			if (got == 0)
				child_gone(c, r);
			if (got > 0) {
				c->in.len += (size_t)got;
				c->in.data[c->in.len] = 0;
				if (memchr(c->in.data + c->in.len - got, '\n',
				    (size_t)got) != NULL && premature(c, sent))
					extra_answer(c, r, NULL);
			}
		}
	}

	size_t len = (size_t)(nl - c->in.data);
	double v;
	c->answered++;
	/* Every record sent is answered: nothing more may have come. */
	if (c->answered == c->asked) {
		const char *x;
		read_ready(c, len + 1);
		nl = c->in.data + len;	/* the buffer may have moved */
		if ((x = more_output(&c->in, len + 1)) != NULL)
			extra_answer(c, r, x);
	}
	if (parse_number_line(c->in.data, len, &v) != 0) {
		struct strbuf q;
		sb_init(&q);
		quote(&q, c->in.data, len);
		rec_die(r, NULL, "--cmd: the command answered \"%s\", not a "
		    "number", q.data ? q.data : "");
	}
	c->in.len -= len + 1;
	memmove(c->in.data, nl + 1, c->in.len);
	c->in.data[c->in.len] = 0;
	return v;
}

void
cmd_finish(struct cmd_child *c, uint64_t nrec)
{
	char how[128];
	size_t extra = 0;
	ssize_t got;
	char buf[4096];

	for (size_t i = 0; i < c->in.len; i++)
		extra += !isspace((unsigned char)c->in.data[i]);

	close(c->to);
	c->to = -1;
	/* Whatever the child still says is more than it was asked for. */
	while ((got = read(c->from, buf, sizeof(buf))) != 0) {
		if (got == -1) {
			if (errno == EINTR)
				continue;
			err(EXIT_DATA, "--cmd: reading from the command");
		}
		for (ssize_t i = 0; i < got; i++)
			extra += !isspace((unsigned char)buf[i]);
	}
	close(c->from);
	c->from = -1;
	child_status(c, 1, how, sizeof(how));
	if (extra > 0)
		errx(EXIT_DATA, "--cmd: the command answered more lines than "
		    "records sent (%llu records)", (unsigned long long)nrec);
	if (strcmp(how, "exited with status 0") != 0)
		errx(EXIT_DATA, "--cmd: the command %s after %llu records", how,
		    (unsigned long long)nrec);
	sb_free(&c->in);
	sb_free(&c->line);
	free(c);
}
