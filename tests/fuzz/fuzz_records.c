/*
 * fuzz_records: libFuzzer target for the record reader and the JSON codec.
 *
 * Each input is read as a record stream (msgpack, JSON Lines, zstd, as
 * detected), every record is written back as msgpack and as JSON, and the
 * JSON is parsed again and must give the same JSON text: a crash, a hang,
 * a sanitizer report or a round trip that changes a record is a finding.
 * Errors in the data are expected: the error hook jumps back here.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "records/record.h"
#include "util/util.h"

static jmp_buf on_error;

static void
jump_back(const char *msg)
{
	(void)msg;
	longjmp(on_error, 1);
}

/* JSON text of a record, or NULL when it has none (bad UTF-8...). */
static int
to_json(const msgpack_object *o, struct strbuf *b)
{
	sb_clear(b);
	return json_emit(b, o);
}

static void
check_round_trip(const struct rec *r)
{
	struct strbuf a, b;
	sb_init(&a);
	sb_init(&b);
	msgpack_object o = rec_as_object(r);
	if (to_json(&o, &a) == 0) {
		msgpack_zone *z = msgpack_zone_new(4096);
		msgpack_object back;
		char err[128];
		size_t pos;
		if (json_parse(a.data, a.len, z, &back, err, sizeof(err),
		    &pos) != 0) {
			fprintf(stderr, "emitted JSON does not parse: %s at %zu"
			    "\n%s\n", err, pos, a.data);
			abort();
		}
		if (to_json(&back, &b) != 0 || a.len != b.len ||
		    memcmp(a.data, b.data, a.len) != 0) {
			fprintf(stderr, "JSON round trip differs:\n%s\n%s\n",
			    a.data, b.data);
			abort();
		}
		msgpack_zone_free(z);
	}
	sb_free(&a);
	sb_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static struct rec_writer *sink;
	if (fd < 0) {
		fd = memfd_create("fuzz", 0);
		rec_error_hook = jump_back;
		sink = rec_writer_open(open("/dev/null", O_WRONLY), "null", 0);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	char *paths[] = { path };

	/* volatile: read back after longjmp. */
	struct rec_reader *volatile rd = rec_reader_open(paths, 1);
	struct rec r;
	volatile int have = 0;
	if (setjmp(on_error) == 0) {
		while (rec_read(rd, &r)) {
			have = 1;
			check_round_trip(&r);
			rec_write(sink, &r);
			rec_free(&r);
			have = 0;
		}
	}
	if (have)
		rec_free(&r);
	rec_reader_close(rd);
	return 0;
}
