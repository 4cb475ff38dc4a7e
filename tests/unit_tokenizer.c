/*
 * unit_tokenizer: tests of lib/tokenizer and lib/chat.
 *
 *   unit_tokenizer                       run the unit tests
 *   unit_tokenizer --dump TOK.json CONFIG.json|- CORPUS.jsonl
 *                                        encode and decode a corpus, one
 *                                        JSON line per string, exactly as
 *                                        tests/tokenizer/reference.js does
 *   unit_tokenizer --chat TEMPLATES.json CONVERSATIONS.jsonl
 *                                        render conversations with the
 *                                        renderer detected for each
 *                                        template, as chat_reference.js
 *   unit_tokenizer --encode TOK.json TEXT
 *                                        print the ids of TEXT
 */
#include "config.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>


#include "text/chat.h"
#include "text/tok_impl.h"
#include "text/tokenizer.h"
#include "util/util.h"

static int failures, checks;

#define CHECK(cond) do { checks++; if (!(cond)) { failures++; \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
	#cond); } } while (0)

/* ------------------------------------------------------------------------ */
/* --dump: JSON text as JavaScript's JSON.stringify writes it. */

static void
put_json_string(FILE *f, const char *s, size_t n)
{
	size_t i;
	unsigned char c;

	putc('"', f);
	for (i = 0; i < n; i++) {
		c = s[i];
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20)
				fprintf(f, "\\u%04x", c);
			else
				putc(c, f);
		}
	}
	putc('"', f);
}

static void
put_ids(FILE *f, const int32_t *ids, size_t n)
{
	size_t i;

	putc('[', f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%d", i ? "," : "", ids[i]);
	putc(']', f);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct strbuf b;
	char buf[65536];
	size_t n;

	if (f == NULL)
		err(1, "%s", path);
	sb_init(&b);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sb_add(&b, buf, n);
	fclose(f);
	*len = b.len;
	return b.data ? b.data : xstrdup("");
}

static struct tokenizer *
load(const char *tokpath, const char *cfgpath)
{
	struct tokenizer *t;
	char e[512], *cfg;
	size_t len;

	if ((t = tokenizer_from_file(tokpath, e, sizeof(e))) == NULL)
		errx(1, "%s", e);
	if (cfgpath && strcmp(cfgpath, "-") != 0) {
		cfg = slurp(cfgpath, &len);
		if (tokenizer_load_config(t, cfg, len, cfgpath, e, sizeof(e)))
			errx(1, "%s", e);
		free(cfg);
	}
	return t;
}

static int
dump(const char *tokpath, const char *cfgpath, const char *corpus)
{
	struct tokenizer *t = load(tokpath, cfgpath);
	FILE *f;
	char *line = NULL, *text, *skip;
	size_t cap = 0, n, np, tlen, slen;
	ssize_t len;
	int32_t *ids, *plain;
	json_t *j;
	json_error_t jerr;

	if ((f = fopen(corpus, "r")) == NULL)
		err(1, "%s", corpus);
	while ((len = getline(&line, &cap, f)) > 0) {
		if (len == 1)
			continue;
		j = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
		    &jerr);
		if (j == NULL || !json_is_string(j))
			errx(1, "%s: line %d: expected a JSON string", corpus,
			    jerr.line);
		n = tokenizer_encode(t, json_string_value(j),
		    json_string_length(j), 1, &ids);
		np = tokenizer_encode(t, json_string_value(j),
		    json_string_length(j), 0, &plain);
		/* As reference.js: null where a field repeats another. */
		fputs("{\"ids\":", stdout);
		put_ids(stdout, ids, n);
		fputs(",\"plain\":", stdout);
		if (np == n && memcmp(ids, plain, n * sizeof(*ids)) == 0)
			fputs("null", stdout);
		else
			put_ids(stdout, plain, np);
		fputs(",\"text\":", stdout);
		text = tokenizer_decode(t, ids, n, 0, &tlen);
		if (tlen == json_string_length(j) &&
		    memcmp(text, json_string_value(j), tlen) == 0)
			fputs("null", stdout);
		else
			put_json_string(stdout, text, tlen);
		fputs(",\"skip\":", stdout);
		skip = tokenizer_decode(t, ids, n, 1, &slen);
		if (slen == tlen && memcmp(text, skip, tlen) == 0)
			fputs("null", stdout);
		else
			put_json_string(stdout, skip, slen);
		free(text);
		free(skip);
		fputs("}\n", stdout);
		free(ids);
		free(plain);
		json_decref(j);
	}
	free(line);
	fclose(f);
	tokenizer_free(t);
	return 0;
}

/*
 * --chat: the lines chat_reference.js prints, from the built-in named by
 * the template's name (up to a "~"); --chat-jinja: from the template's
 * own text, through lib/text/jinja.
 */
static int
chat_dump(const char *tplpath, const char *convpath, int jinja)
{
	json_error_t jerr;
	json_t *tpls, *convs, *src, *conv, *msg;
	const struct chat_template *ct;
	struct chat_msg *m;
	const char *name;
	char *text, e[256];
	size_t i, k;
	int gen;

	if ((tpls = json_load_file(tplpath, 0, &jerr)) == NULL)
		errx(1, "%s: %s", tplpath, jerr.text);
	/* One conversation a line. */
	{
		FILE *f = fopen(convpath, "r");
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;

		if (f == NULL)
			err(1, "%s", convpath);
		convs = json_array();
		while ((len = getline(&line, &cap, f)) > 0)
			if (len > 1)
				json_array_append_new(convs, json_loadb(line,
				    len, 0, &jerr));
		free(line);
		fclose(f);
	}
	json_object_foreach(tpls, name, src) {
		char base[64];
		snprintf(base, sizeof(base), "%.*s", (int)strcspn(name, "~"),
		    name);
		ct = jinja ? chat_template_jinja(json_string_value(src), NULL,
		    name, e, sizeof(e)) : chat_template_by_name(base);
		json_array_foreach(convs, i, conv) {
			m = xcalloc(json_array_size(conv) + 1, sizeof(*m));
			json_array_foreach(conv, k, msg) {
				m[k].role = json_string_value(json_object_get(
				    msg, "role"));
				m[k].content = json_string_value(
				    json_object_get(msg, "content"));
			}
			for (gen = 0; gen < 2; gen++) {
				text = ct ? chat_render(ct, m,
				    json_array_size(conv), gen, "<s>", "</s>",
				    json_string_value(src), e, sizeof(e)) : NULL;
				printf("{\"template\":\"%s\",\"conv\":%zu,"
				    "\"gen\":%d,\"text\":", ct ? base : "?", i,
				    gen);
				if (text)
					put_json_string(stdout, text,
					    strlen(text));
				else
					fputs("null", stdout);
				fputs("}\n", stdout);
				free(text);
			}
			free(m);
		}
		if (jinja)
			chat_template_free(ct);
	}
	json_decref(tpls);
	json_decref(convs);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Unit tests: the stages one by one, with the Rust library's semantics
 * where tokenizers.js (the reference of tokenizer_*.sh) differs or lacks
 * a feature. */

static char ebuf[512];

static struct tok_err *
fresh_err(void)
{
	static struct tok_err e;

	e.file = "test.json";
	e.buf = ebuf;
	e.size = sizeof(ebuf);
	e.failed = 0;
	ebuf[0] = 0;
	return &e;
}

/* Pre-tokenize s with the pre-tokenizer in json; pieces joined by '|'. */
static char *
pretok_str(const char *json, const char *s, int first)
{
	static struct strbuf out;
	struct pieces in = { 0 }, o = { 0 }, tmp = { 0 };
	struct pretok *p;
	json_t *j = json_loads(json, 0, NULL);
	size_t i;

	if (j == NULL)
		errx(1, "bad test json: %s", json);
	if ((p = build_pretok(j, fresh_err(), "pre_tokenizer")) == NULL)
		errx(1, "%s", ebuf);
	pieces_add(&in, s, strlen(s), first);
	tok_pretokenize(p, &in, &o, &tmp);
	sb_clear(&out);
	sb_adds(&out, "");
	for (i = 0; i < o.n; i++) {
		if (i)
			sb_addc(&out, '|');
		sb_add(&out, o.buf.data + o.v[i].off, o.v[i].len);
	}
	pieces_free(&in);
	pieces_free(&o);
	pieces_free(&tmp);
	free_pretok(p);
	json_decref(j);
	return out.data;
}

static int
pretok_is(const char *json, const char *s, int first, const char *want)
{
	char *got = pretok_str(json, s, first);

	if (strcmp(got, want) != 0) {
		fprintf(stderr, "pre-tokenizer %s on \"%s\": got \"%s\", want "
		    "\"%s\"\n", json, s, got, want);
		return 0;
	}
	return 1;
}

static int
norm_is(const char *json, const char *s, const char *want)
{
	struct normalizer *n;
	struct strbuf b, tmp;
	json_t *j = json_loads(json, 0, NULL);
	int ok;

	if (j == NULL || (n = build_normalizer(j, fresh_err(), "normalizer")) ==
	    NULL)
		errx(1, "bad test normalizer %s: %s", json, ebuf);
	sb_init(&b);
	sb_init(&tmp);
	sb_adds(&b, s);
	tok_normalize(n, &b, &tmp);
	ok = b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
	if (!ok)
		fprintf(stderr, "normalizer %s on \"%s\": got \"%.*s\", want "
		    "\"%s\"\n", json, s, (int)b.len, b.data, want);
	sb_free(&b);
	sb_free(&tmp);
	free_normalizer(n);
	json_decref(j);
	return ok;
}

/* Decode the tokens (NULL-terminated) with the decoder in json. */
static int
dec_is(const char *json, const char *const *toks, const char *want)
{
	struct decoder *d;
	struct toklist in = { 0 }, out = { 0 };
	struct strbuf b;
	json_t *j = json_loads(json, 0, NULL);
	size_t i;
	int ok;

	if (j == NULL || (d = build_decoder(j, fresh_err(), "decoder")) == NULL)
		errx(1, "bad test decoder %s: %s", json, ebuf);
	for (i = 0; toks[i]; i++)
		toklist_add(&in, toks[i], strlen(toks[i]), 0);
	tok_decode_tokens(d, &in, &out);
	sb_init(&b);
	sb_adds(&b, "");
	for (i = 0; i < out.n; i++)
		sb_add(&b, out.buf.data + out.off[i], out.len[i]);
	ok = strcmp(b.data, want) == 0;
	if (!ok)
		fprintf(stderr, "decoder %s: got \"%s\", want \"%s\"\n", json,
		    b.data, want);
	sb_free(&b);
	toklist_free(&in);
	toklist_free(&out);
	free_decoder(d);
	json_decref(j);
	return ok;
}

/* A tokenizer from a JSON text with ' for " (for readability). */
static struct tokenizer *
tok_from(const char *json)
{
	char *s = xstrdup(json), *p;
	struct tokenizer *t;

	for (p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	t = tokenizer_from_json(s, strlen(s), "test.json", ebuf, sizeof(ebuf));
	free(s);
	return t;
}

/* Encode s; the ids as "1 2 3". */
static int
enc_is(struct tokenizer *t, const char *s, int special, const char *want)
{
	static struct strbuf b;
	int32_t *ids;
	size_t i, n = tokenizer_encode(t, s, strlen(s), special, &ids);
	int ok;

	sb_clear(&b);
	sb_adds(&b, "");
	for (i = 0; i < n; i++)
		sb_printf(&b, "%s%d", i ? " " : "", ids[i]);
	free(ids);
	ok = strcmp(b.data, want) == 0;
	if (!ok)
		fprintf(stderr, "encode \"%s\": got \"%s\", want \"%s\"\n", s,
		    b.data, want);
	return ok;
}

static void
test_split(void)
{
	const char *sp = "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},"
	    "\"invert\":false,\"behavior\":\"%s\"}";
	char j[256];

	snprintf(j, sizeof(j), sp, "Removed");
	CHECK(pretok_is(j, "a-b--c-", 1, "a|b|c"));
	snprintf(j, sizeof(j), sp, "Isolated");
	CHECK(pretok_is(j, "a-b--c-", 1, "a|-|b|-|-|c|-"));
	snprintf(j, sizeof(j), sp, "MergedWithPrevious");
	CHECK(pretok_is(j, "a-b--c-", 1, "a-|b-|-|c-"));
	snprintf(j, sizeof(j), sp, "MergedWithNext");
	CHECK(pretok_is(j, "a-b--c-", 1, "a|-b|-|-c|-"));
	snprintf(j, sizeof(j), sp, "Contiguous");
	CHECK(pretok_is(j, "a-b--c-", 1, "a|-|b|--|c|-"));
	CHECK(pretok_is("{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},"
	    "\"invert\":true,\"behavior\":\"Removed\"}", "a-b--c-", 1,
	    "-|-|-|-"));
	/* Llama-3's pattern, with PCRE2 in UTF and UCP mode. */
	CHECK(pretok_is("{\"type\":\"Split\",\"pattern\":{\"Regex\":"
	    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
	    "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
	    "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false}",
	    "I'LL pay 12345 café\n\n  ok", 1,
	    "I|'LL| pay| |123|45| café|\n\n| | ok"));
	CHECK(pretok_is("{\"type\":\"Digits\",\"individual_digits\":true}",
	    "a123b", 1, "a|1|2|3|b"));
	CHECK(pretok_is("{\"type\":\"Digits\",\"individual_digits\":false}",
	    "a123b4", 1, "a|123|b|4"));
	CHECK(pretok_is("{\"type\":\"Whitespace\"}", "Hi, there!  x", 1,
	    "Hi|,|there|!|x"));
	CHECK(pretok_is("{\"type\":\"WhitespaceSplit\"}", " a  b\tc ", 1,
	    "a|b|c"));
	CHECK(pretok_is("{\"type\":\"Punctuation\"}", "a,b!!", 1,
	    "a|,|b|!|!"));
	CHECK(pretok_is("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
	    "\"use_regex\":false}", "a b\n", 1, "\xc4\xa0" "a\xc4\xa0" "b\xc4\x8a"));
	CHECK(pretok_is("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}",
	    "it's 2", 1, "it|'s|\xc4\xa0" "2"));
	/* U+FEFF is no \s for Oniguruma (nor Python), though it is for
	 * JavaScript: "  \ufeff" is " " then " \ufeff". */
	CHECK(pretok_is("{\"type\":\"Split\",\"pattern\":{\"Regex\":"
	    "\" ?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
	    "\"behavior\":\"Isolated\",\"invert\":false}", "  \xef\xbb\xbfw", 1,
	    " | \xef\xbb\xbf|w"));
}

static void
test_metaspace(void)
{
	const char *always = "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"prepend_scheme\":\"always\",\"split\":true}";
	const char *first = "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"prepend_scheme\":\"first\",\"split\":false}";
	const char *never = "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"prepend_scheme\":\"never\",\"split\":true}";
	const char *old = "{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"add_prefix_space\":false}";

	CHECK(pretok_is(always, "hello world", 1,
	    "\xe2\x96\x81hello|\xe2\x96\x81world"));
	CHECK(pretok_is(always, "  a", 1, "\xe2\x96\x81|\xe2\x96\x81" "a"));
	CHECK(pretok_is(always, "x", 0, "\xe2\x96\x81x"));
	CHECK(pretok_is(first, "x y", 1, "\xe2\x96\x81x\xe2\x96\x81y"));
	CHECK(pretok_is(first, "x y", 0, "x\xe2\x96\x81y"));
	CHECK(pretok_is(never, "x y", 1, "x|\xe2\x96\x81y"));
	CHECK(pretok_is(old, "x", 1, "x"));
}

static void
test_normalizers(void)
{
	CHECK(norm_is("{\"type\":\"NFC\"}", "e\xcc\x81", "\xc3\xa9"));
	CHECK(norm_is("{\"type\":\"NFD\"}", "\xc3\xa9", "e\xcc\x81"));
	CHECK(norm_is("{\"type\":\"NFKC\"}", "\xef\xac\x81" "x\xc2\xb2",
	    "fix2"));
	CHECK(norm_is("{\"type\":\"Lowercase\"}", "HeLLo \xc3\x89 \xc4\xb0",
	    "hello \xc3\xa9 i\xcc\x87"));
	CHECK(norm_is("{\"type\":\"Strip\",\"strip_left\":true,"
	    "\"strip_right\":false}", " \xe3\x80\x80 a  ", "a  "));
	CHECK(norm_is("{\"type\":\"Strip\",\"strip_left\":true,"
	    "\"strip_right\":true}", "\t a \n", "a"));
	CHECK(norm_is("{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
	    "\"content\":\"\xe2\x96\x81\"}", "a b ", "a\xe2\x96\x81" "b\xe2\x96\x81"));
	CHECK(norm_is("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\d+\"},"
	    "\"content\":\"#\"}", "a12b3", "a#b#"));
	CHECK(norm_is("{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"}", "x",
	    "\xe2\x96\x81x"));
	CHECK(norm_is("{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"}", "",
	    ""));
	CHECK(norm_is("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":"
	    "\"NFKC\"},{\"type\":\"Lowercase\"}]}", "\xef\xbc\xa1" "B", "ab"));
}

static void
test_decoders(void)
{
	static const char *const bf[] = { "<0xE4>", "<0xBD>", "a", "<0xFF>",
	    "<0xC3>", "<0xA9>", NULL };
	static const char *const bl[] = { "\xc3\xa4", "\xc2\xbd", "A", NULL };
	static const char *const ms[] = { "\xe2\x96\x81Hello",
	    "\xe2\x96\x81world", NULL };
	static const char *const st[] = { "  ab ", " c", NULL };
	static const char *const bpe[] = { "ab</w>", "c", "d</w>", NULL };

	/* Invalid UTF-8 from a run of byte tokens: one U+FFFD per byte of
	 * the run, as HF (FF C3 A9 is one run, invalid as a whole). */
	CHECK(dec_is("{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
	    "\"ByteFallback\"},{\"type\":\"Fuse\"}]}", bf,
	    "\xef\xbf\xbd\xef\xbf\xbd" "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
	CHECK(dec_is("{\"type\":\"Sequence\",\"decoders\":[{\"type\":"
	    "\"ByteFallback\"},{\"type\":\"Fuse\"}]}", bf + 4, "\xc3\xa9"));
	/* ByteLevel: bytes E4 BD 41, lossy with maximal subparts. */
	CHECK(dec_is("{\"type\":\"ByteLevel\"}", bl, "\xef\xbf\xbd" "A"));
	CHECK(dec_is("{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"prepend_scheme\":\"always\"}", ms, "Hello world"));
	CHECK(dec_is("{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
	    "\"prepend_scheme\":\"never\"}", ms, " Hello world"));
	CHECK(dec_is("{\"type\":\"Strip\",\"content\":\" \",\"start\":1,"
	    "\"stop\":1}", st, " abc"));
	CHECK(dec_is("{\"type\":\"Replace\",\"pattern\":{\"String\":\"b\"},"
	    "\"content\":\"B\"}", st, "  aB  c"));
	CHECK(dec_is("{\"type\":\"BPEDecoder\",\"suffix\":\"</w>\"}", bpe,
	    "ab cd"));
}

static void
test_bpe(void)
{
	struct tokenizer *t;

	t = tok_from("{'model':{'type':'BPE','unk_token':'<unk>','fuse_unk':"
	    "true,'vocab':{'<unk>':0,'a':1,'b':2,'ab':3,'c':4,'abc':5,' ':6,"
	    "'x':7},'merges':['a b',['ab','c']]},'added_tokens':[{'id':10,"
	    "'content':'ab','single_word':true,'special':false,'normalized':"
	    "false},{'id':11,'content':'<m>','lstrip':true,'rstrip':true,"
	    "'special':true}]}");
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", ebuf);
		return;
	}
	CHECK(enc_is(t, "abcyzab", 1, "5 0 3"));
	CHECK(enc_is(t, "abcyz ab", 1, "5 0 6 10"));
	CHECK(enc_is(t, "ab xab ab_", 1, "10 6 7 3 6 3 0"));
	CHECK(enc_is(t, "x  <m>  ab", 1, "7 11 10"));
	CHECK(enc_is(t, "", 1, ""));
	CHECK(tokenizer_vocab_size(t) == 12);
	CHECK(tokenizer_token_to_id(t, "<m>", 3) == 11);
	CHECK(tokenizer_is_special(t, 11) && !tokenizer_is_special(t, 10));
	CHECK(tokenizer_id_to_token(t, 8) == NULL);
	tokenizer_free(t);

	/* Without fuse_unk, each unknown character is its own unk. */
	t = tok_from("{'model':{'type':'BPE','unk_token':'<unk>','vocab':"
	    "{'<unk>':0,'a':1},'merges':[]}}");
	CHECK(t && enc_is(t, "ayz", 1, "1 0 0"));
	tokenizer_free(t);

	/* continuing_subword_prefix: "a ##b" merges into "ab". */
	t = tok_from("{'model':{'type':'BPE','continuing_subword_prefix':'##',"
	    "'vocab':{'a':0,'##b':1,'##c':2,'ab':3},'merges':['a ##b']}}");
	CHECK(t && enc_is(t, "abc", 1, "3 2"));
	tokenizer_free(t);

	/* end_of_word_suffix on the last character. */
	t = tok_from("{'model':{'type':'BPE','end_of_word_suffix':'</w>',"
	    "'vocab':{'a':0,'b</w>':1,'ab</w>':2},'merges':['a b</w>']},"
	    "'decoder':{'type':'BPEDecoder','suffix':'</w>'}}");
	CHECK(t && enc_is(t, "ab", 1, "2"));
	if (t) {
		int32_t ids[] = { 2, 2 };
		char *s = tokenizer_decode(t, ids, 2, 0, NULL);
		CHECK(strcmp(s, "ab ab") == 0);
		free(s);
	}
	tokenizer_free(t);

	/* ignore_merges: a word in the vocabulary is taken whole. */
	t = tok_from("{'model':{'type':'BPE','ignore_merges':true,'vocab':"
	    "{'a':0,'b':1,'c':2,'bc':3,'abc':4},'merges':['b c']}}");
	CHECK(t && enc_is(t, "abc", 1, "4"));
	tokenizer_free(t);
	t = tok_from("{'model':{'type':'BPE','vocab':{'a':0,'b':1,'c':2,"
	    "'bc':3,'abc':4},'merges':['b c']}}");
	CHECK(t && enc_is(t, "abc", 1, "0 3"));
	tokenizer_free(t);

	/* byte_fallback: bytes when they all have tokens, else unk. */
	t = tok_from("{'model':{'type':'BPE','byte_fallback':true,"
	    "'unk_token':'<unk>','vocab':{'<unk>':0,'<0xC3>':1,'<0xA9>':2,"
	    "'a':3},'merges':[]},'decoder':{'type':'Sequence','decoders':"
	    "[{'type':'ByteFallback'},{'type':'Fuse'}]}}");
	CHECK(t && enc_is(t, "a\xc3\xa9", 1, "3 1 2"));
	CHECK(t && enc_is(t, "a\xe4\xb8\xad", 1, "3 0"));
	if (t) {
		int32_t ids[] = { 3, 1, 2, 1 };
		char *s = tokenizer_decode(t, ids, 4, 0, NULL);
		CHECK(strcmp(s, "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
		free(s);
	}
	tokenizer_free(t);

	/* A TemplateProcessing post-processor with BOS and EOS. */
	t = tok_from("{'model':{'type':'BPE','vocab':{'<s>':0,'</s>':1,'a':2},"
	    "'merges':[]},'added_tokens':[{'id':0,'content':'<s>','special':"
	    "true},{'id':1,'content':'</s>','special':true}],"
	    "'post_processor':{'type':'Sequence','processors':[{'type':"
	    "'ByteLevel'},{'type':'TemplateProcessing','single':[{"
	    "'SpecialToken':{'id':'<s>'}},{'Sequence':{'id':'A'}},"
	    "{'SpecialToken':{'id':'</s>'}}],'special_tokens':{'<s>':{'ids':"
	    "[0]},'</s>':{'ids':[1]}}}]}}");
	CHECK(t && enc_is(t, "aa", 1, "0 2 2 1"));
	CHECK(t && enc_is(t, "aa", 0, "2 2"));
	CHECK(t && enc_is(t, "a</s>", 0, "2 1"));
	CHECK(t && tokenizer_bos_id(t) == 0 && tokenizer_eos_id(t) == 1);
	if (t) {
		int32_t ids[] = { 0, 2, 1 };
		char *s = tokenizer_decode(t, ids, 3, 1, NULL);
		CHECK(strcmp(s, "a") == 0);
		free(s);
		s = tokenizer_decode(t, ids, 3, 0, NULL);
		CHECK(strcmp(s, "<s> a </s>") == 0);	/* no decoder: spaces */
		free(s);
	}
	tokenizer_free(t);
}

static int
load_fails(const char *json, const char *want)
{
	struct tokenizer *t = tok_from(json);

	if (t != NULL) {
		tokenizer_free(t);
		fprintf(stderr, "loaded, want error \"%s\"\n", want);
		return 0;
	}
	if (strstr(ebuf, want) == NULL) {
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", ebuf, want);
		return 0;
	}
	return 1;
}

static void
test_errors(void)
{
	CHECK(load_fails("{'model':{'type':'Unigram','vocab':[]}}",
	    "test.json: model.type: unsupported model \"Unigram\""));
	CHECK(load_fails("{'model':{'type':'WordPiece','vocab':{}}}",
	    "unsupported model \"WordPiece\""));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{'a':0},'merges':"
	    "['a b']}}", "model.merges[0]: token \"b\" is not in model.vocab"));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{'a':0},'merges':"
	    "['a']}}", "model.merges[0]: expected"));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{},'merges':[]},"
	    "'normalizer':{'type':'Sequence','normalizers':[{'type':"
	    "'Precompiled'}]}}", "normalizer.normalizers[0]: unsupported "
	    "normalizer \"Precompiled\""));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{},'merges':[]},"
	    "'pre_tokenizer':{'type':'Split','pattern':{'Regex':'('},"
	    "'behavior':'Isolated'}}", "pre_tokenizer.pattern: bad regex"));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{},'merges':[]},"
	    "'pre_tokenizer':{'type':'Split','pattern':{'String':'x'},"
	    "'behavior':'Sideways'}}", "behavior \"Sideways\""));
	CHECK(load_fails("{'model':{'type':'BPE','vocab':{'a':0},'merges':[],"
	    "'unk_token':'<unk>'}}", "model.unk_token: \"<unk>\" is not in"));
	CHECK(load_fails("{'model':", "test.json: line 1"));
}

static void
test_byte_tokenizer(const char *dir)
{
	char path[1024], e[512], *cfg, *s;
	struct tokenizer *t;
	size_t len, n, i;
	int32_t *ids;
	unsigned char bytes[256];

	snprintf(path, sizeof(path), "%s/tests/tokenizer/byte.json", dir);
	if ((t = tokenizer_from_file(path, e, sizeof(e))) == NULL) {
		fprintf(stderr, "%s\n", e);
		CHECK(0);
		return;
	}
	snprintf(path, sizeof(path), "%s/tests/tokenizer/byte_config.json",
	    dir);
	cfg = slurp(path, &len);
	CHECK(tokenizer_load_config(t, cfg, len, path, e, sizeof(e)) == 0);
	free(cfg);
	CHECK(tokenizer_bos_id(t) == 256 && tokenizer_eos_id(t) == 257 &&
	    tokenizer_pad_id(t) == 258 && tokenizer_vocab_size(t) == 259);
	CHECK(strcmp(tokenizer_eos_token(t), "<|eos|>") == 0);
	CHECK(enc_is(t, "hi", 1, "256 104 105"));
	CHECK(enc_is(t, "hi<|eos|>", 0, "104 105 257"));
	/* Every byte string round-trips; invalid UTF-8 decodes lossily. */
	for (i = 0; i < 256; i++)
		bytes[i] = i;
	n = tokenizer_encode(t, (char *)bytes + 1, 127, 0, &ids);
	CHECK(n == 127);
	s = tokenizer_decode(t, ids, n, 0, &len);
	CHECK(len == 127 && memcmp(s, bytes + 1, 127) == 0);
	free(s);
	free(ids);
	n = tokenizer_encode(t, "\xff" "a\xe4\xb8", 4, 0, &ids);
	CHECK(n == 4);
	s = tokenizer_decode(t, ids, n, 0, &len);
	CHECK(strcmp(s, "\xef\xbf\xbd" "a\xef\xbf\xbd") == 0);
	free(s);
	free(ids);
	tokenizer_free(t);
}

static void
test_chat(void)
{
	const struct chat_template *ct;
	struct chat_msg m[] = { { .role = "system", .content = "S" },
	    { .role = "user", .content = "Hi" },
	    { .role = "assistant", .content = "Yo" } };
	char e[512], *s;

	CHECK(chat_template_by_name("nope") == NULL);
	CHECK(strcmp(chat_template_names(), "chatml, qwen2, llama3, llama2, "
	    "mistral, zephyr, plain") == 0);
	ct = chat_template_by_name("plain");
	CHECK(ct && strcmp(chat_template_name(ct), "plain") == 0);
	s = chat_render(ct, m, 3, 1, "<s>", "</s>", NULL, e, sizeof(e));
	CHECK(s && strcmp(s, "S\n\nHi\n\nYo") == 0);
	free(s);
	ct = chat_template_by_name("chatml");
	s = chat_render(ct, m + 1, 2, 1, "", "", NULL, e, sizeof(e));
	CHECK(s && strcmp(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
	    "assistant\nYo<|im_end|>\n<|im_start|>assistant\n") == 0);
	free(s);
	ct = chat_template_by_name("mistral");
	s = chat_render(ct, m, 3, 0, "<s>", "</s>", NULL, e, sizeof(e));
	CHECK(s == NULL && strstr(e, "alternate"));
	s = chat_render(ct, m + 1, 2, 0, "<s>", "</s>", NULL, e, sizeof(e));
	CHECK(s && strcmp(s, "<s>[INST] Hi [/INST]Yo</s>") == 0);
	free(s);
	/* a built-in needs string contents */
	struct chat_msg parts = { .role = "user", .content = NULL };
	s = chat_render(ct, &parts, 1, 0, "<s>", "</s>", NULL, e, sizeof(e));
	CHECK(s == NULL && strstr(e, "message 1: the content is not a string"));
	/* a template from its source; its errors name where it is */
	struct chat_template *jt = chat_template_jinja("{% for m in messages "
	    "%}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ bos_token }}",
	    NULL, "x.jinja", e, sizeof(e));
	CHECK(jt && strcmp(chat_template_name(jt), "jinja") == 0);
	s = jt ? chat_render(jt, m, 2, 0, "<s>", "</s>", NULL, e, sizeof(e)) :
	    NULL;
	CHECK(s && strcmp(s, "[system:S][user:Hi]<s>") == 0);
	free(s);
	chat_template_free(jt);
	CHECK(chat_template_jinja("a\n{% if %}", NULL, "x.jinja", e,
	    sizeof(e)) == NULL && strstr(e, "x.jinja: line 2, column 7"));
	/* the tool_use variant when tools are given */
	jt = chat_template_jinja("plain", "tools: {{ tools | length }}", "y",
	    e, sizeof(e));
	json_t *v = json_pack("{s:[i,i]}", "tools", 1, 2);
	s = chat_render_vars(jt, m, 1, 0, "", "", NULL, v, NULL, NULL, e,
	    sizeof(e));
	CHECK(s && strcmp(s, "tools: 2") == 0);
	free(s);
	s = chat_render_vars(jt, m, 1, 0, "", "", NULL, NULL, NULL, NULL, e,
	    sizeof(e));
	CHECK(s && strcmp(s, "plain") == 0);
	free(s);
	json_decref(v);
	chat_template_free(jt);
}


int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--chat") == 0)
		return chat_dump(argv[2], argv[3], 0);
	if (argc == 4 && strcmp(argv[1], "--chat-jinja") == 0)
		return chat_dump(argv[2], argv[3], 1);
	if (argc == 5 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2], argv[3], argv[4]);
	if (argc == 4 && strcmp(argv[1], "--encode") == 0) {
		struct tokenizer *t = load(argv[2], NULL);
		int32_t *ids;
		size_t i, n = tokenizer_encode(t, argv[3], strlen(argv[3]), 1,
		    &ids);
		for (i = 0; i < n; i++)
			printf("%d %s\n", ids[i], tokenizer_id_to_token(t,
			    ids[i]));
		free(ids);
		tokenizer_free(t);
		return 0;
	}
	test_split();
	test_metaspace();
	test_normalizers();
	test_decoders();
	test_bpe();
	test_errors();
	test_byte_tokenizer(getenv("top_srcdir") ? getenv("top_srcdir") : ".");
	test_chat();
	printf("%d checks, %d failed\n", checks, failures);
	return failures != 0;
}
