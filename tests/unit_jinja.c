/*
 * unit_jinja: tests of lib/text/jinja (the Jinja interpreter).
 *
 *   unit_jinja                 the unit tests: jinja2 semantics the
 *                              reference engine lacks, errors with their
 *                              line and column, generation spans
 *   unit_jinja --features FEATURES.json CONTEXT.json REF.jsonl
 *   unit_jinja --chats DIR TOKENS.json CONVS.jsonl REF.jsonl [KNOWN]
 *                              render as tests/jinja/reference.js does and
 *                              compare with its output, line by line: the
 *                              same text, or an error where it raised.
 *                              KNOWN lists "TEMPLATE CONV" pairs where
 *                              jinja2 and the reference disagree, with
 *                              the reason; those must differ.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "check.h"
#include "text/jinja.h"

/* Render src with vars (JSON text); NULL on error, err filled. */
static char *
render(const char *src, const char *vars, char *err, size_t errsz)
{
	json_error_t je;
	json_t *v = vars ? json_loads(vars, 0, &je) : NULL;
	struct jinja *j;
	char *r = NULL;

	if (vars && v == NULL) {
		fprintf(stderr, "bad test vars: %s\n", je.text);
		exit(2);
	}
	j = jinja_parse(src, "t.jinja", err, errsz);
	if (j)
		r = jinja_render(j, v, NULL, NULL, err, errsz);
	jinja_free(j);
	json_decref(v);
	return r;
}

static int
renders(const char *src, const char *vars, const char *want)
{
	char e[512];
	char *got = render(src, vars, e, sizeof(e));
	int ok = got && strcmp(got, want) == 0;

	if (!ok)
		fprintf(stderr, "  %s\n    got  %s\n    want %s\n", src,
		    got ? got : e, want);
	free(got);
	return ok;
}

/* The rendering fails with a message containing want. */
static int
fails(const char *src, const char *vars, const char *want)
{
	char e[512] = "";
	char *got = render(src, vars, e, sizeof(e));
	int ok = got == NULL && strstr(e, want) != NULL;

	if (!ok)
		fprintf(stderr, "  %s\n    got  %s\n    want error with %s\n",
		    src, got ? got : e, want);
	free(got);
	return ok;
}

/* jinja2 (Python) semantics, where @huggingface/jinja differs or lacks. */
static void
test_python_semantics(void)
{
	/* str() of values */
	CHECK(renders("{{ true }} {{ false }} {{ none }} {{ [1, 'a', none] }} "
	    "{{ {'k': \"it's\"} }} {{ (1,) }}", NULL,
	    "True False None [1, 'a', None] {'k': \"it's\"} (1,)"));
	CHECK(renders("{{ 1e3 }} {{ 2.0 }} {{ 1 / 3 }} {{ 10 // 4 }} {{ -0.5 }} "
	    "{{ 1e16 }} {{ 0.0001 }} {{ 0.00001 }} {{ 123.456 }} {{ 1.5e300 }}",
	    NULL, "1000.0 2.0 0.3333333333333333 2 -0.5 1e+16 0.0001 1e-05 "
	    "123.456 1.5e+300"));
	/* string methods with chars, and filters the reference lacks */
	CHECK(renders("{{ 'xxaxx'.strip('x') }}|{{ 'xxhixx' | trim('x') }}|"
	    "{{ 'abc' | list | join('.') }}|{{ [0, 1, '', 'x'] | select | "
	    "list | length }}|{{ missing | d('d') }}|{{ [1, 2, 3] | sum }}|"
	    "{{ [4, 9, 2] | max }}{{ [4, 9, 2] | min }}|{{ '<b>&' | e }}|"
	    "{{ 'x' | int }}", NULL, "a|hi|a.b.c|2|d|6|92|&lt;b&gt;&amp;|0"));
	CHECK(renders("{{ 'ab' * 3 }} {{ 'a' < 'b' }} {{ 9 is divisibleby 3 }} "
	    "{{ 3 is equalto 3 }} {{ 1.5 is float }}", NULL,
	    "ababab True True True True"));
	CHECK(renders("{{ ms | join('|', attribute='role') }}",
	    "{\"ms\": [{\"role\": \"user\"}, {\"role\": \"assistant\"}]}",
	    "user|assistant"));
	/* undefined: iterates as empty, has length 0 */
	CHECK(renders("[{% for x in nothing %}{{ x }}{% endfor %}]"
	    "[{{ nothing | length }}][{{ nothing | items | list | length }}]",
	    NULL, "[][0][0]"));
	/* but an attribute of undefined, or arithmetic on it, is an error */
	CHECK(fails("{{ nothing.attr }}", NULL, "'nothing' is undefined"));
	CHECK(fails("{{ messages[0]['role'] }}", "{\"messages\": []}",
	    "line 1, column 15: list object has no element 0"));
	CHECK(fails("{{ 'a' + nothing }}", NULL, "'nothing' is undefined"));
	CHECK(fails("{{ d.x.y }}", "{\"d\": {}}",
	    "'dict object' has no attribute 'x'"));
	/* dict.setdefault, update and pop, as Python's (an attribute
	 * read of setdefault crashed before they were built in: found by
	 * the fuzzer) */
	CHECK(renders("[{% if m.setdefault %}x{% endif %}]"
	    "{% set _ = m.setdefault('a', 2) %}{% set _ = m.setdefault('p', 9) %}"
	    "{% set _ = m.update({'b': 3}, c=4) %}{{ m.pop('p') }}"
	    "{{ m.pop('zz', 'd') }}{{ m }}",
	    "{\"m\": {\"p\": 1}}", "[x]1d{'a': 2, 'b': 3, 'c': 4}"));
	CHECK(fails("{{ m.pop('zz') }}", "{\"m\": {}}", "pop: no key 'zz'"));
	/* widths no template needs are refused, not spent on spaces (a
	 * fuzzer timeout); json.dumps takes a negative indent as 0 */
	CHECK(fails("{{ 'a\nb' | indent(4444444444444) }}", NULL,
	    "indent: width 4444444444444 is too wide"));
	CHECK(fails("{{ [1] | tojson(indent=4294967297) }}", NULL,
	    "tojson: indent 4294967297 is too wide"));
	CHECK(renders("{{ [1, 2] | tojson(indent=-3) }}", NULL, "[\n1,\n2\n]"));
	/* {%+ keeps the indentation lstrip_blocks would remove; raw */
	CHECK(renders("line\n    {%+ if true %}kept{% endif %}\n", NULL,
	    "line\n    kept"));
	CHECK(renders("{% raw %}{{ not evaluated }} {% if %}{% endraw %}!",
	    NULL, "{{ not evaluated }} {% if %}!"));
	/* str.format, splitlines, find, tojson's ensure_ascii, sort_keys */
	CHECK(renders("{{ '{} and {name}'.format(1, name='x') }}|"
	    "{{ 'a\\nb\\r\\nc'.splitlines() | length }}|{{ 'héllo'.find('l') }}"
	    "|{{ 'é😀' | tojson(ensure_ascii=true) }}|{{ {'b': 1, 'a': 2} | "
	    "tojson(sort_keys=true) }}", NULL,
	    "1 and x|3|2|\"\\u00e9\\ud83d\\ude00\"|{\"a\": 2, \"b\": 1}"));
	/* transformers' tojson: ensure_ascii first, then indent, separators,
	 * sort_keys */
	CHECK(renders("{{ ['é', {'b': 1, 'a': [2]}] | tojson(true, 1) }}|"
	    "{{ {'b': 1, 'a': 2} | tojson(separators=[',', ':'], sort_keys=true)"
	    " }}|{{ [1, 2] | tojson(indent=none) }}", NULL,
	    "[\n \"\\u00e9\",\n {\n  \"b\": 1,\n  \"a\": [\n   2\n  ]\n }\n]|"
	    "{\"a\":2,\"b\":1}|[1, 2]"));
	/* dict methods win over keys for '.', keys win for [] */
	CHECK(renders("{{ d.items() | length }} {{ d['items'] }}",
	    "{\"d\": {\"items\": 7}}", "1 7"));
	/* loop scoping: set in a loop does not leak; namespace does */
	CHECK(renders("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}"
	    "{% endfor %}{{ x }}", NULL, "1"));
	/* for-else runs when the filtered loop is empty */
	CHECK(renders("{% for m in [1, 2] if m > 5 %}{{ m }}{% else %}none"
	    "{% endfor %}", NULL, "none"));
	/* strftime_now */
	{
		char want[64];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(want, sizeof(want), "%Y-%m-%d", &tm);
		CHECK(renders("{{ strftime_now('%Y-%m-%d') }}", NULL, want));
	}
	/* range is bounded as in jinja2's sandbox */
	CHECK(fails("{{ range(1000000) | length }}", NULL, "range too big"));
	/* where the reference engine follows JavaScript */
	CHECK(renders("{{ -7 % 3 }} {{ 7 % -3 }} {{ -7 // 2 }} {{ -7.5 // 2 }}",
	    NULL, "2 -2 -4 -4.0"));
	CHECK(renders("{{ 'hello World' | capitalize }}|{{ [1, 2] == [1, 2] }}"
	    "|{{ {'a': 1} == {'a': 1} }}|{{ '\n x\n'.lstrip('\n') }}|"
	    "{{ none | trim }}|{{ [1] | trim }}", NULL,
	    "Hello world|True|True| x\n|None|[1]"));
	CHECK(fails("{{ 1 + 2 | string }}", NULL, "unsupported operand types "
	    "for +: int and str"));
	CHECK(fails("{{ 'a' + [1] }}", NULL, "unsupported operand types for +: "
	    "str and list"));
	/* chained comparisons, loop.cycle */
	CHECK(renders("{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 3 > 2 == 2 }} "
	    "{% for x in 'abc' %}{{ loop.cycle('+', '-') }}{% endfor %}", NULL,
	    "True False True +-+"));
	/* title vs str.title */
	CHECK(renders("{{ \"it's a-b\" | title }}|{{ \"it's a-b\".title() }}",
	    NULL, "It's A-B|It'S A-B"));
}

/* Syntax and runtime errors name the template, line and column. */
static void
test_errors(void)
{
	CHECK(fails("a\n{% if x %}\nb", NULL,
	    "t.jinja: line 2, column 4: 'if' without 'endif'"));
	CHECK(fails("ab\n  {{ 1 + }}", NULL,
	    "t.jinja: line 2, column 10: unexpected '}}'"));
	CHECK(fails("{% endfor %}", NULL, "line 1, column 4: unexpected "
	    "'endfor'"));
	CHECK(fails("x\n\n   {% frobnicate %}", NULL,
	    "line 3, column 7: unknown tag 'frobnicate'"));
	CHECK(fails("{{ 'abc }}", NULL, "line 1, column 4: unterminated "
	    "string"));
	CHECK(fails("{{ x", NULL, "line 1, column 1: unclosed {{"));
	CHECK(fails("{# never closed", NULL, "unclosed comment"));
	CHECK(fails("{{ x | nosuchfilter }}", NULL,
	    "line 1, column 8: no filter named 'nosuchfilter'"));
	CHECK(fails("\n{{ 1 is nosuchtest }}", NULL,
	    "line 2, column 6: no test named 'nosuchtest'"));
	CHECK(fails("{{ 1 // 0 }}", NULL, "division by zero"));
	CHECK(fails("{{ 9223372036854775807 + 1 }}", NULL, "integer overflow"));
	CHECK(fails("{{ 7 - 102 ** 10 }}", NULL, "integer overflow in **"));
	CHECK(renders("{{ (-1) ** 9 }} {{ 1 ** 99999999999 }} {{ 2 ** 62 }}",
	    NULL, "-1 1 4611686018427387904"));
	CHECK(fails("{% set ns = 1 %}{% set ns.a = 2 %}", NULL,
	    "only on a namespace"));
	CHECK(fails("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL,
	    "takes 1 arguments, 2 given"));
	CHECK(fails("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", NULL,
	    "nested too deep"));
	/* runaway nesting is an error, not a crash */
	{
		struct { const char *open, *close; } deep[] = {
			{ "(", ")" }, { "-", "" }, { "not ", "" }, { "[", "]" },
		};
		for (size_t k = 0; k < 4; k++) {
			char *src = malloc(100000);
			size_t n = 0;
			n += sprintf(src + n, "{{ ");
			for (int i = 0; i < 5000; i++)
				n += sprintf(src + n, "%s", deep[k].open);
			n += sprintf(src + n, "1");
			for (int i = 0; i < 5000; i++)
				n += sprintf(src + n, "%s", deep[k].close);
			sprintf(src + n, " }}");
			CHECK(fails(src, NULL, "nested too deep"));
			free(src);
		}
		char *src = malloc(200000);
		size_t n = 0;
		for (int i = 0; i < 5000; i++)
			n += sprintf(src + n, "{%% if true %%}");
		src[n] = 0;
		CHECK(fails(src, NULL, "nested too deep"));
		free(src);
	}
	/* raise_exception's message is the error, as it is */
	{
		char e[256];
		char *r = render("{{ raise_exception('Roles must alternate') }}",
		    NULL, e, sizeof(e));
		CHECK(r == NULL && strcmp(e, "Roles must alternate") == 0);
		free(r);
	}
}

/* {% generation %}: the spans its output takes in the rendering. */
static void
test_generation(void)
{
	const char *src = "{% for m in messages %}<{{ m.role }}>"
	    "{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
	    "</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}"
	    "{% endfor %}";
	const char *vars = "{\"messages\": [{\"role\": \"user\", \"content\": "
	    "\"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}, "
	    "{\"role\": \"user\", \"content\": \"ok\"}, {\"role\": "
	    "\"assistant\", \"content\": \"fine\"}]}";
	char e[256];
	json_t *v = json_loads(vars, 0, NULL);
	struct jinja *j = jinja_parse(src, "g", e, sizeof(e));
	struct jinja_span *sp;
	size_t n;

	CHECK(j && jinja_has_generation(j));
	char *r = j ? jinja_render(j, v, &sp, &n, e, sizeof(e)) : NULL;
	CHECK(r && strcmp(r, "<user>hi<assistant>yo</s><user>ok<assistant>"
	    "fine</s>") == 0);
	CHECK(r && n == 2);
	if (r && n == 2) {
		CHECK(strncmp(r + sp[0].from, "yo</s>", sp[0].to - sp[0].from)
		    == 0 && sp[0].to - sp[0].from == 6);
		CHECK(strncmp(r + sp[1].from, "fine</s>", sp[1].to -
		    sp[1].from) == 0 && sp[1].to - sp[1].from == 8);
	}
	free(r);
	free(sp);
	jinja_free(j);
	/* without generation blocks: no spans */
	j = jinja_parse("{{ 1 }}", "g", e, sizeof(e));
	CHECK(j && !jinja_has_generation(j));
	r = jinja_render(j, NULL, &sp, &n, e, sizeof(e));
	CHECK(r && n == 0 && sp == NULL);
	free(r);
	jinja_free(j);
	json_decref(v);
}

/* ------------------------------------------------------------------------ */
/* Against the reference's renderings */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
		perror(path);
		exit(2);
	}
	rewind(f);
	s = malloc(n + 1);
	if (s == NULL || fread(s, 1, n, f) != (size_t)n) {
		perror(path);
		exit(2);
	}
	s[n] = 0;
	fclose(f);
	return s;
}

static json_t *
load(const char *path)
{
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (j == NULL) {
		fprintf(stderr, "%s: line %d: %s\n", path, je.line, je.text);
		exit(2);
	}
	return j;
}

/* Compare one rendering with the reference's line; 1 when they agree. */
static int
agree(const char *what, const char *got, const char *err, json_t *ref,
    int quiet)
{
	json_t *t = json_object_get(ref, "text");
	if (t == NULL) {
		if (got == NULL)
			return 1;
		if (quiet)
			return 0;
		fprintf(stderr, "%s: the reference raised, we gave %s\n", what,
		    got);
		return 0;
	}
	if (got && strcmp(got, json_string_value(t)) == 0)
		return 1;
	if (quiet)
		return 0;
	char *rt = json_dumps(t, JSON_ENCODE_ANY);
	json_t *g = got ? json_string(got) : NULL;
	char *gt = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;
	fprintf(stderr, "%s:\n  reference %s\n  ours      %s\n", what, rt,
	    gt ? gt : err);
	free(rt);
	free(gt);
	json_decref(g);
	return 0;
}

static int
features(const char *fpath, const char *cpath, const char *rpath)
{
	json_t *feats = load(fpath), *ctx = load(cpath);
	FILE *rf = fopen(rpath, "r");
	const char *name;
	json_t *src;
	char line[1 << 16], e[512];
	int n = 0, bad = 0;

	if (rf == NULL) {
		perror(rpath);
		return 2;
	}
	json_object_foreach(feats, name, src) {
		if (fgets(line, sizeof(line), rf) == NULL) {
			fprintf(stderr, "%s: too few lines\n", rpath);
			return 1;
		}
		json_t *ref = json_loads(line, 0, NULL);
		struct jinja *j = jinja_parse(json_string_value(src), name, e,
		    sizeof(e));
		char *got = j ? jinja_render(j, ctx, NULL, NULL, e, sizeof(e)) :
		    NULL;
		if (ref == NULL || strcmp(json_string_value(json_object_get(ref,
		    "name")), name) != 0) {
			fprintf(stderr, "%s: line %d is not %s\n", rpath, n + 1,
			    name);
			return 1;
		}
		bad += !agree(name, got, e, ref, 0);
		n++;
		free(got);
		jinja_free(j);
		json_decref(ref);
	}
	fclose(rf);
	printf("features: %d templates, %d differ from the reference\n", n,
	    bad);
	json_decref(feats);
	json_decref(ctx);
	return bad != 0;
}

static int
known(const char *list, const char *tmpl, int conv)
{
	char key[128];
	const char *p;

	if (list == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s %d", tmpl, conv);
	for (p = list; (p = strstr(p, key)) != NULL; p++)
		if ((p == list || p[-1] == '\n') && (p[strlen(key)] == ' ' ||
		    p[strlen(key)] == '\t' || p[strlen(key)] == '\n'))
			return 1;
	return 0;
}

static int
chats(const char *dir, const char *tpath, const char *cpath,
    const char *rpath, const char *kpath)
{
	json_t *tokens = load(tpath), *tk;
	char *convs = slurp(cpath), *known_list = kpath ? slurp(kpath) : NULL;
	FILE *rf = fopen(rpath, "r");
	const char *name;
	char line[1 << 16], e[512], path[4096], what[256];
	int n = 0, bad = 0, nknown = 0, nerr = 0;

	if (rf == NULL) {
		perror(rpath);
		return 2;
	}
	json_object_foreach(tokens, name, tk) {
		snprintf(path, sizeof(path), "%s/%s.jinja", dir, name);
		char *src = slurp(path);
		struct jinja *j = jinja_parse(src, path, e, sizeof(e));
		if (j == NULL) {
			fprintf(stderr, "%s\n", e);
			return 1;
		}
		const char *bos = json_string_value(json_object_get(tk,
		    "bos_token"));
		const char *eos = json_string_value(json_object_get(tk,
		    "eos_token"));
		char *p = convs, *nl;
		for (int ci = 0; (nl = strchr(p, '\n')) != NULL; ci++,
		    p = nl + 1) {
			json_t *c = json_loadb(p, nl - p, 0, NULL);
			for (int gen = 0; gen < 2; gen++) {
				json_t *v = json_object();
				json_object_set(v, "messages",
				    json_object_get(c, "messages"));
				json_t *tools = json_object_get(c, "tools");
				json_object_set(v, "tools", tools ? tools :
				    json_null());
				json_object_set_new(v, "documents", json_null());
				json_object_set_new(v, "add_generation_prompt",
				    json_boolean(gen));
				json_object_set_new(v, "bos_token",
				    json_string(bos ? bos : ""));
				json_object_set_new(v, "eos_token",
				    json_string(eos ? eos : ""));
				json_object_update(v, json_object_get(c,
				    "kwargs"));
				char *got = jinja_render(j, v, NULL, NULL, e,
				    sizeof(e));
				if (fgets(line, sizeof(line), rf) == NULL) {
					fprintf(stderr, "%s: too few lines\n",
					    rpath);
					return 1;
				}
				json_t *ref = json_loads(line, 0, NULL);
				snprintf(what, sizeof(what), "%s conv %d gen %d",
				    name, ci, gen);
				int ok = agree(what, got, e, ref,
				    known(known_list, name, ci));
				if (known(known_list, name, ci)) {
					/* must still differ, or the entry
					 * is stale */
					nknown++;
					if (ok) {
						fprintf(stderr, "%s: listed in "
						    "%s but agrees\n", what,
						    kpath);
						bad++;
					}
				} else
					bad += !ok;
				nerr += got == NULL;
				n++;
				free(got);
				json_decref(ref);
				json_decref(v);
			}
			json_decref(c);
		}
		jinja_free(j);
		free(src);
	}
	fclose(rf);
	printf("chats: %d renderings (%d raise), %d differ from the reference, "
	    "%d known differences\n", n, nerr, bad, nknown);
	free(convs);
	free(known_list);
	json_decref(tokens);
	return bad != 0;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--features") == 0)
		return features(argv[2], argv[3], argv[4]);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "--chats") == 0)
		return chats(argv[2], argv[3], argv[4], argv[5],
		    argc == 7 ? argv[6] : NULL);
	test_python_semantics();
	test_errors();
	test_generation();
	return check_status();
}
