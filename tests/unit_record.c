/*
 * unit_record: the record API and the JSON codec, in-process.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/record.h"
#include "util/util.h"

#include "check.h"

/* Parse text, emit it again, and compare with want. */
static void
json_case(const char *text, const char *want)
{
	msgpack_zone *z = msgpack_zone_new(4096);
	msgpack_object o;
	char err[128];
	size_t pos;
	struct strbuf b;
	sb_init(&b);
	if (json_parse(text, strlen(text), z, &o, err, sizeof(err), &pos)) {
		fprintf(stderr, "parse %s: %s at %zu\n", text, err, pos);
		failures++;
	} else if (json_emit(&b, &o) != 0 || strcmp(b.data, want) != 0) {
		fprintf(stderr, "json %s: got %s, want %s\n", text,
		    b.data ? b.data : "(error)", want);
		failures++;
	}
	sb_free(&b);
	msgpack_zone_free(z);
}

/* Parsing text must fail at column col (1-based) with msg. */
static void
json_error(const char *text, size_t col, const char *msg)
{
	msgpack_zone *z = msgpack_zone_new(4096);
	msgpack_object o;
	char err[128];
	size_t pos = 0;
	if (json_parse(text, strlen(text), z, &o, err, sizeof(err), &pos) == 0) {
		fprintf(stderr, "json %s: parsed, want error %s\n", text, msg);
		failures++;
	} else if (pos + 1 != col || strstr(err, msg) == NULL) {
		fprintf(stderr, "json %s: error \"%s\" at %zu, want \"%s\" at "
		    "%zu\n", text, err, pos + 1, msg, col);
		failures++;
	}
	msgpack_zone_free(z);
}

static void
test_json(void)
{
	json_case("{}", "{}");
	json_case(" [ 1 , -2 , 0 ] ", "[1,-2,0]");
	json_case("18446744073709551615", "18446744073709551615");
	json_case("-9223372036854775808", "-9223372036854775808");
	/* Past the 64-bit range integers become floats. */
	json_case("18446744073709551616", "1.8446744073709552e+19");
	json_case("-0", "0");
	json_case("1.0", "1.0");
	json_case("0.1", "0.1");
	json_case("1e300", "1e+300");
	json_case("-2.5E-3", "-0.0025");
	json_case("123456789.125", "123456789.125");
	json_case("NaN", "NaN");
	json_case("-Infinity", "-Infinity");
	json_case("\"a\\\"b\\\\c\\/d\\n\\t\\u0001\"", "\"a\\\"b\\\\c/d\\n\\t\\u0001\"");
	json_case("\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"");
	json_case("{\"$bin\":\"AAEC/w==\"}", "{\"$bin\":\"AAEC/w==\"}");
	json_case("{\"$bin\":\"\"}", "{\"$bin\":\"\"}");
	json_case("{\"$bin\":1}", "{\"$bin\":1}");
	json_case("{\"a\":{\"b\":[true,false,null]}}",
	    "{\"a\":{\"b\":[true,false,null]}}");

	json_error("", 1, "unexpected end");
	json_error("{\"a\" 1}", 6, "expected ':'");
	json_error("{\"a\":1,}", 8, "expected string key");
	json_error("[1 2]", 4, "expected ',' or ']'");
	json_error("01", 2, "unexpected text");
	json_error("1.", 3, "digit expected");
	json_error("\"abc", 1, "unterminated string");
	json_error("\"\\x\"", 2, "invalid escape");
	json_error("\"\\ud800\"", 2, "lone surrogate");
	json_error("\"\xff\"", 2, "invalid UTF-8");
	json_error("\"\xc0\xaf\"", 2, "invalid UTF-8");	/* overlong */
	json_error("tru", 1, "invalid literal");
	json_error("{\"$bin\":\"A\"}", 1, "invalid base64");
	json_error("{} x", 4, "unexpected text");
	char deep[2000];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = 0;
	json_error(deep, REC_MAX_DEPTH + 1, "nesting deeper than 32 levels");
}

/* n arrays around inner: "[[inner]]". */
static char *
nested(int n, const char *inner)
{
	struct strbuf b;
	sb_init(&b);
	for (int i = 0; i < n; i++)
		sb_addc(&b, '[');
	sb_adds(&b, inner);
	for (int i = 0; i < n; i++)
		sb_addc(&b, ']');
	return b.data;
}

/* One depth limit: what parses is what emits, and the other way round. */
static void
test_depth(void)
{
	char *t;
	t = nested(REC_MAX_DEPTH, "");
	json_case(t, t);
	free(t);
	json_error(t = nested(REC_MAX_DEPTH + 1, ""), REC_MAX_DEPTH + 1,
	    "nesting deeper than 32 levels");
	free(t);
	/* Empty maps count; a bin written as {"$bin": ...} does not. */
	json_error(t = nested(REC_MAX_DEPTH, "{}"), REC_MAX_DEPTH + 1,
	    "nesting deeper");
	free(t);
	json_error(t = nested(REC_MAX_DEPTH, "{\"a\":1}"), REC_MAX_DEPTH + 1,
	    "nesting deeper");
	free(t);
	t = nested(REC_MAX_DEPTH, "{\"$bin\":\"AA==\"}");
	json_case(t, t);
	free(t);

	/* Emitting: REC_MAX_DEPTH levels are written, one more is not. */
	msgpack_object lv[REC_MAX_DEPTH + 1];
	for (int i = 0; i <= REC_MAX_DEPTH; i++) {
		lv[i].type = MSGPACK_OBJECT_ARRAY;
		lv[i].via.array.size = i < REC_MAX_DEPTH ? 1 : 0;
		lv[i].via.array.ptr = i < REC_MAX_DEPTH ? &lv[i + 1] : NULL;
	}
	struct strbuf b;
	sb_init(&b);
	CHECK(json_emit(&b, &lv[0]) == JSON_TOO_DEEP);
	CHECK(strcmp(json_emit_error(JSON_TOO_DEEP),
	    "nesting deeper than 32 levels") == 0);
	sb_clear(&b);
	CHECK(json_emit(&b, &lv[1]) == 0);
	t = nested(REC_MAX_DEPTH, "");
	CHECK(strcmp(b.data, t) == 0);
	free(t);
	sb_clear(&b);
	CHECK(json_emit_in(&b, &lv[1], 1) == JSON_TOO_DEEP);
	sb_free(&b);
}

static void
test_float32(void)
{
	/* float32 prints as the shortest decimal that reads back to it. */
	float vals[] = { 0.1f, 1.0f / 3, -1e-8f, 3.4028235e38f, 16777216.0f,
	    -0.5f, -2.5829806e10f, 1.5e7f, 0.00012345678f, 0.0f };
	const char *want[] = { "0.1", "0.33333334", "-1e-08",
	    "3.4028235e+38", "16777216.0", "-0.5", "-25829806000.0",
	    "15000000.0", "0.00012345678", "0.0" };
	for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++) {
		msgpack_object o = { .type = MSGPACK_OBJECT_FLOAT32 };
		o.via.f64 = vals[i];
		struct strbuf b;
		sb_init(&b);
		json_emit(&b, &o);
		CHECK(strtof(b.data, NULL) == vals[i]);
		/* Read back as float64 and written again: the same text. */
		msgpack_zone *z = msgpack_zone_new(256);
		msgpack_object back;
		char err[64];
		size_t pos;
		struct strbuf b2;
		sb_init(&b2);
		CHECK(json_parse(b.data, b.len, z, &back, err, sizeof(err),
		    &pos) == 0);
		CHECK(json_emit(&b2, &back) == 0 && strcmp(b.data, b2.data) == 0);
		sb_free(&b2);
		msgpack_zone_free(z);
		if (strcmp(b.data, want[i]) != 0) {
			fprintf(stderr, "float32 %g: got %s want %s\n",
			    (double)vals[i], b.data, want[i]);
			failures++;
		}
		sb_free(&b);
	}
}

static void
test_fields(void)
{
	struct rec r;
	rec_init(&r, "test", 1);
	rec_set_str(&r, "id", "p1");
	rec_set_int(&r, "n", -3);
	rec_set_num(&r, "reward", 0.5);
	rec_set_bool(&r, "greedy", 1);
	int32_t toks[] = { 1, 2, 3 };
	float lp[] = { -0.25f, -1.5f };
	rec_set_int_array(&r, "tokens", toks, 3);
	rec_set_float_array(&r, "logprobs", lp, 2);

	/* Replacing keeps the field's place; new fields go last. */
	rec_set_num(&r, "n", 7.5);
	rec_set_str(&r, "extra", "x");
	const char *order[] = { "id", "n", "reward", "greedy", "tokens",
	    "logprobs", "extra" };
	CHECK(r.n == 7);
	for (uint32_t i = 0; i < r.n && i < 7; i++)
		CHECK(r.kv[i].key.via.str.size == strlen(order[i]) &&
		    memcmp(r.kv[i].key.via.str.ptr, order[i],
		    strlen(order[i])) == 0);

	size_t len;
	CHECK(strcmp(rec_need_str(&r, "id", &len), "p1") != 0 || len == 2);
	CHECK(memcmp(rec_need_str(&r, "id", &len), "p1", 2) == 0 && len == 2);
	CHECK(rec_need_num(&r, "n") == 7.5);
	CHECK(rec_need_bool(&r, "greedy") == 1);
	CHECK(rec_opt_int(&r, "missing", 42) == 42);
	CHECK(rec_opt_num(&r, "reward", 0) == 0.5);
	int32_t *t;
	CHECK(rec_need_int_array(&r, "tokens", &t) == 3 && t[2] == 3);
	free(t);
	float *f;
	CHECK(rec_need_float_array(&r, "logprobs", &f) == 2 && f[1] == -1.5f);
	free(f);

	/* Nested maps: set, read back by path, copy. */
	struct rec sub, copy;
	rec_init(&sub, "test", 1);
	rec_set_num(&sub, "reward", 2.0);
	rec_set_sub(&r, "chosen", &sub);
	rec_free(&sub);
	const msgpack_object *v = rec_get_path(&r, "chosen.reward");
	CHECK(v != NULL && v->via.f64 == 2.0);
	CHECK(rec_get_path(&r, "chosen.missing") == NULL);
	CHECK(rec_get_path(&r, "id.x") == NULL);
	rec_copy(&copy, &r);
	rec_free(&r);
	CHECK(rec_get_path(&copy, "chosen.reward")->via.f64 == 2.0);
	CHECK(rec_del(&copy, "n") == 1 && rec_get(&copy, "n") == NULL);
	CHECK(rec_del(&copy, "n") == 0);
	CHECK(copy.n == 7);
	rec_need_sub(&copy, "chosen", &sub);
	CHECK(rec_need_num(&sub, "reward") == 2.0);
	rec_free(&sub);
	rec_free(&copy);
}

/* Adding fields to a record read from a stream (its array borrowed). */
static void
test_borrowed(void)
{
	const char *text = "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,"
	    "\"f\":6,\"g\":7,\"h\":8,\"i\":9}";
	struct rec r;
	rec_init(&r, "test", 1);
	msgpack_object o;
	char err[64];
	size_t pos;
	CHECK(json_parse(text, strlen(text), r.zone, &o, err, sizeof(err),
	    &pos) == 0);
	r.kv = o.via.map.ptr;
	r.n = o.via.map.size;
	r.cap = 0;
	for (int i = 0; i < 20; i++) {
		char key[8];
		snprintf(key, sizeof(key), "x%d", i);
		rec_set_int(&r, key, i);
	}
	CHECK(r.n == 29);
	CHECK(rec_need_int(&r, "i") == 9 && rec_need_int(&r, "x19") == 19);
	rec_free(&r);
}

int
main(void)
{
	test_borrowed();
	test_json();
	test_depth();
	test_float32();
	test_fields();
	return check_status();
}
