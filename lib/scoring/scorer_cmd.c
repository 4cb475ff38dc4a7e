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
			}
		}
	}

	size_t len = (size_t)(nl - c->in.data);
	double v;
	if (parse_number_line(c->in.data, len, &v) != 0) {
		/* Quote the answer, cut short and with controls escaped. */
		struct strbuf q;
		sb_init(&q);
		for (size_t i = 0; i < len && i < 60; i++) {
			unsigned char ch = (unsigned char)c->in.data[i];
			if (ch < 0x20 || ch == 0x7f)
				sb_printf(&q, "\\x%02x", ch);
			else
				sb_addc(&q, (char)ch);
		}
		if (len > 60)
			sb_adds(&q, "...");
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
		errx(EXIT_DATA, "--cmd: the command wrote more than one line "
		    "per record (%llu records)", (unsigned long long)nrec);
	if (strcmp(how, "exited with status 0") != 0)
		errx(EXIT_DATA, "--cmd: the command %s after %llu records", how,
		    (unsigned long long)nrec);
	sb_free(&c->in);
	sb_free(&c->line);
	free(c);
}
