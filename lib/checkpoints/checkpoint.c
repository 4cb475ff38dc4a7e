/* checkpoint.c: see checkpoint.h and prefpipe-checkpoint(5). */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "checkpoints/checkpoint.h"
#include "checkpoints/safetensors.h"
#include "util/util.h"

/* ------------------------------------------------------------------------ */
/* The files of a checkpoint */

/* One file: mmapped (directories) or read into memory (archives). */
struct cfile {
	char *name;
	unsigned char *buf;
	size_t len;
	int mapped;
};

/* A safetensors file set: one file, or the shards of one model. */
struct st_set {
	struct st_file *f;
	size_t nf;
	struct tensor **t;	/* every tensor, in file order */
	struct tensor **byname;	/* the same, sorted by name */
	size_t nt;
	char *name;		/* "model.safetensors", "optimizer.safetensors" */
};

struct ckpt {
	char *path;
	int archive;
	int adapter;		/* a PEFT adapter (ckpt_is_adapter) */
	struct cfile *files;	/* sorted by name */
	size_t nfiles;
	json_t *config;
	struct st_set model;
	struct st_set **extra;	/* optional safetensors files, loaded lazily */
	size_t nextra;
	int refs;		/* holders beyond the first (ckpt_ref) */
};

static int
cfile_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cfile *)a)->name,
	    ((const struct cfile *)b)->name);
}

static struct cfile *
find_cfile(const struct ckpt *c, const char *name)
{
	struct cfile key = { .name = (char *)name };
	if (c->nfiles == 0)	/* files is NULL: bsearch may not see it */
		return NULL;
	return bsearch(&key, c->files, c->nfiles, sizeof key, cfile_cmp);
}

/*
 * Map one file copy-on-write: tensors can then be used in place and even
 * changed by their user, and the file never sees it.
 */
static void
map_file(const char *dir, const char *name, struct cfile *cf)
{
	char path[4096];
	struct stat st;

	memset(cf, 0, sizeof *cf);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_RDONLY);
	if (fd == -1 || fstat(fd, &st) == -1)
		err(EXIT_DATA, "%s", path);
	cf->name = xstrdup(name);
	cf->len = (size_t)st.st_size;
	if (cf->len == 0) {
		cf->buf = xmalloc(1);
	} else {
		cf->buf = mmap(NULL, cf->len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE, fd, 0);
		if (cf->buf == MAP_FAILED)
			err(EXIT_DATA, "%s: mmap", path);
		cf->mapped = 1;
	}
	close(fd);
}

static void
load_dir(struct ckpt *c)
{
	DIR *d = opendir(c->path);
	struct dirent *de;
	size_t cap = 0;

	if (d == NULL)
		err(EXIT_DATA, "%s", c->path);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char path[4096];
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", c->path, de->d_name);
		if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		if (c->nfiles == cap) {
			cap = cap ? 2 * cap : 16;
			c->files = xreallocarray(c->files, cap,
			    sizeof *c->files);
		}
		map_file(c->path, de->d_name, &c->files[c->nfiles++]);
	}
	closedir(d);
}

/* The entry's name inside the checkpoint: "model/config.json" -> ... */
static const char *
entry_base(const char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	return name;
}

/*
 * tar_die: exit with libarchive's message, the reader freed first.  The
 * message lives in the reader, so it is copied out; a reader still open
 * at exit is a leak to LeakSanitizer, which then changes the exit status.
 */
static void __attribute__((noreturn))
tar_die(struct archive *a, const char *path, const char *entry,
    const char *what)
{
	char msg[1024];

	snprintf(msg, sizeof msg, "%s%s%s%s", entry ? entry : "",
	    entry ? ": " : "", what, archive_error_string(a));
	archive_read_free(a);
	errx(EXIT_DATA, "%s: %s", path, msg);
}

static void
load_archive(struct ckpt *c)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t cap = 0;
	int r;

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, c->path, 1 << 16) != ARCHIVE_OK)
		tar_die(a, c->path, NULL, "not a checkpoint (a directory, "
		    "or a .tar, .tar.zst or .tar.gz of one): ");
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (c->nfiles == cap) {
			cap = cap ? 2 * cap : 16;
			c->files = xreallocarray(c->files, cap,
			    sizeof *c->files);
		}
		struct cfile *cf = &c->files[c->nfiles++];
		memset(cf, 0, sizeof *cf);
		struct strbuf b;
		sb_init(&b);
		if (archive_entry_size_is_set(e))
			sb_reserve(&b, (size_t)archive_entry_size(e));
		for (;;) {
			sb_reserve(&b, 1 << 16);
			la_ssize_t n = archive_read_data(a, b.data + b.len,
			    b.cap - b.len - 1);
			if (n < 0)
				tar_die(a, c->path, archive_entry_pathname(e),
				    "");
			if (n == 0)
				break;
			b.len += (size_t)n;
		}
		cf->name = xstrdup(entry_base(archive_entry_pathname(e)));
		cf->buf = (unsigned char *)(b.data ? b.data : xmalloc(1));
		cf->len = b.len;
	}
	if (r != ARCHIVE_EOF && c->nfiles == 0)
		tar_die(a, c->path, NULL, "not a checkpoint (a directory, "
		    "or a .tar, .tar.zst or .tar.gz of one): ");
	if (r != ARCHIVE_EOF)
		tar_die(a, c->path, NULL, "");
	archive_read_free(a);

	/* An archive of a directory: drop the one leading directory. */
	char *top = NULL;
	size_t tl = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		char *slash = strchr(c->files[i].name, '/');
		size_t l = slash ? (size_t)(slash - c->files[i].name) : 0;
		if (slash == NULL || (top && (l != tl ||
		    strncmp(top, c->files[i].name, l) != 0))) {
			top = NULL;
			break;
		}
		top = c->files[i].name;
		tl = l;
	}
	if (top != NULL) {
		for (size_t i = 0; i < c->nfiles; i++) {
			char *n = c->files[i].name;
			memmove(n, n + tl + 1, strlen(n + tl + 1) + 1);
		}
	}
	/* Files in deeper directories are not part of the checkpoint. */
	size_t k = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		if (strchr(c->files[i].name, '/') == NULL &&
		    c->files[i].name[0] != 0)
			c->files[k++] = c->files[i];
		else {
			free(c->files[i].name);
			free(c->files[i].buf);
		}
	}
	c->nfiles = k;
}

/* ------------------------------------------------------------------------ */
/* Safetensors sets */

static int
tensor_ptr_cmp(const void *a, const void *b)
{
	return strcmp((*(struct tensor *const *)a)->name,
	    (*(struct tensor *const *)b)->name);
}

static void
set_add_file(struct ckpt *c, struct st_set *s, const char *fname)
{
	struct cfile *cf = find_cfile(c, fname);
	char err[512];

	char w[4096];

	if (cf == NULL)
		errx(EXIT_DATA, "%s: missing", ckpt_where(c, fname, w,
		    sizeof w));
	s->f = xreallocarray(s->f, s->nf + 1, sizeof *s->f);
	struct st_file *f = &s->f[s->nf++];
	if (st_parse(f, fname, cf->buf, cf->len, err, sizeof err) != 0)
		errx(EXIT_DATA, "%s: %s", ckpt_where(c, fname, w, sizeof w),
		    err);
	s->t = xreallocarray(s->t, s->nt + f->nt, sizeof *s->t);
	for (size_t i = 0; i < f->nt; i++)
		s->t[s->nt++] = &f->t[i];
}

static void
set_index(struct ckpt *c, struct st_set *s)
{
	if (s->nt == 0)		/* a file of no tensors */
		return;
	s->byname = xreallocarray(NULL, s->nt, sizeof *s->byname);
	memcpy(s->byname, s->t, s->nt * sizeof *s->t);
	qsort(s->byname, s->nt, sizeof *s->byname, tensor_ptr_cmp);
	for (size_t i = 1; i < s->nt; i++)
		if (strcmp(s->byname[i]->name, s->byname[i - 1]->name) == 0)
			errx(EXIT_DATA, "%s: tensor \"%s\" is in both %s and "
			    "%s", c->path, s->byname[i]->name,
			    s->byname[i - 1]->file, s->byname[i]->file);
}

static struct tensor *
set_lookup(const struct st_set *s, const char *name)
{
	struct tensor key = { .name = (char *)name }, *kp = &key;
	if (s->nt == 0)
		return NULL;
	struct tensor **p = bsearch(&kp, s->byname, s->nt, sizeof kp,
	    tensor_ptr_cmp);
	return p ? *p : NULL;
}

static void
free_set(struct st_set *s)
{
	for (size_t i = 0; i < s->nf; i++)
		st_free(&s->f[i]);
	free(s->f);
	free(s->t);
	free(s->byname);
	free(s->name);
}

static int
strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The model's weights: the shards an index lists, each of which must hold
 * the tensors the index puts there, or model.safetensors.
 */
static void
load_model(struct ckpt *c)
{
	const char *ix = "model.safetensors.index.json";
	json_t *index = ckpt_json(c, ix);
	char w[4096];

	c->model.name = xstrdup("model.safetensors");
	if (index == NULL) {
		set_add_file(c, &c->model, "model.safetensors");
		set_index(c, &c->model);
		return;
	}
	json_t *map = json_object_get(index, "weight_map");
	if (!json_is_object(map))
		errx(EXIT_DATA, "%s: no \"weight_map\" object",
		    ckpt_where(c, ix, w, sizeof w));
	/* Shards in name order, each once. */
	const char *key;
	json_t *v;
	size_t nshard = 0;
	const char **shards = xreallocarray(NULL, json_object_size(map) + 1,
	    sizeof *shards);
	json_object_foreach(map, key, v) {
		if (!json_is_string(v) || strchr(json_string_value(v), '/')) {
			free(shards);	/* a leak would change the status */
			errx(EXIT_DATA, "%s: tensor \"%s\": bad shard "
			    "name", ckpt_where(c, ix, w, sizeof w), key);
		}
		size_t j;
		for (j = 0; j < nshard; j++)
			if (strcmp(shards[j], json_string_value(v)) == 0)
				break;
		if (j == nshard)
			shards[nshard++] = json_string_value(v);
	}
	if (nshard == 0)
		errx(EXIT_DATA, "%s: \"weight_map\" lists no tensors",
		    ckpt_where(c, ix, w, sizeof w));
	qsort(shards, nshard, sizeof *shards, strcmp_ptr);
	for (size_t j = 0; j < nshard; j++)
		set_add_file(c, &c->model, shards[j]);
	free(shards);
	set_index(c, &c->model);
	json_object_foreach(map, key, v) {
		struct tensor *t = set_lookup(&c->model, key);
		if (t == NULL || strcmp(t->file, json_string_value(v)) != 0)
			errx(EXIT_DATA, "%s: tensor \"%s\": missing (the "
			    "index puts it there)", ckpt_where(c,
			    json_string_value(v), w, sizeof w), key);
	}
	json_decref(index);
}

/* ------------------------------------------------------------------------ */
/* Loading */

struct ckpt *
ckpt_load(const char *path)
{
	struct ckpt *c = xcalloc(1, sizeof *c);
	struct stat st;

	c->path = xstrdup(path);
	if (stat(path, &st) == -1)
		err(EXIT_DATA, "%s", path);
	if (S_ISDIR(st.st_mode))
		load_dir(c);
	else {
		c->archive = 1;
		load_archive(c);
	}
	/* An empty directory or archive has no files array at all. */
	if (c->nfiles > 0)
		qsort(c->files, c->nfiles, sizeof *c->files, cfile_cmp);

	char w[4096];
	/* A PEFT adapter directory: no config.json or weights of its own
	 * (ckpt_is_adapter); its tensors come through ckpt_extra. */
	if (find_cfile(c, "adapter_config.json") != NULL &&
	    find_cfile(c, "config.json") == NULL) {
		c->config = json_object();
		c->model.name = xstrdup("model.safetensors");
		c->adapter = 1;
		return c;
	}
	c->config = ckpt_json(c, "config.json");
	if (c->config == NULL)
		errx(EXIT_DATA, "%s: missing", ckpt_where(c, "config.json", w,
		    sizeof w));
	if (!json_is_object(c->config))
		errx(EXIT_DATA, "%s: not a JSON object", ckpt_where(c,
		    "config.json", w, sizeof w));
	load_model(c);
	return c;
}

void
ckpt_free(struct ckpt *c)
{
	if (c == NULL)
		return;
	if (c->refs > 0) {
		c->refs--;
		return;
	}
	free_set(&c->model);
	for (size_t i = 0; i < c->nextra; i++) {
		free_set(c->extra[i]);
		free(c->extra[i]);
	}
	free(c->extra);
	for (size_t i = 0; i < c->nfiles; i++) {
		struct cfile *cf = &c->files[i];
		if (cf->mapped)
			munmap(cf->buf, cf->len);
		else
			free(cf->buf);
		free(cf->name);
	}
	free(c->files);
	json_decref(c->config);
	free(c->path);
	free(c);
}

int
ckpt_is_adapter(const struct ckpt *c)
{
	return c->adapter;
}

struct ckpt *
ckpt_ref(struct ckpt *c)
{
	c->refs++;
	return c;
}

const char *
ckpt_path(const struct ckpt *c)
{
	return c->path;
}

char *
ckpt_where(const struct ckpt *c, const char *file, char *buf, size_t n)
{
	snprintf(buf, n, c->archive ? "%s: %s" : "%s/%s", c->path, file);
	return buf;
}

json_t *
ckpt_config(struct ckpt *c)
{
	return c->config;
}

size_t
ckpt_ntensors(const struct ckpt *c)
{
	return c->model.nt;
}

const struct tensor *
ckpt_tensor(const struct ckpt *c, size_t i)
{
	return i < c->model.nt ? c->model.t[i] : NULL;
}

/*
 * A model tensor by name, or by an alias: safetensors' save_model drops
 * all but one name of tensors that share memory, and its __metadata__ maps
 * each dropped name to the one kept ("model.embed_tokens.weight":
 * "lm_head.weight").
 */
static struct tensor *
model_lookup(const struct ckpt *c, const char *name)
{
	struct tensor *t = set_lookup(&c->model, name);

	for (size_t i = 0; t == NULL && i < c->model.nf; i++) {
		json_t *a = json_object_get(c->model.f[i].meta, name);
		if (json_is_string(a) && strcmp(json_string_value(a), name))
			t = set_lookup(&c->model, json_string_value(a));
	}
	return t;
}

const struct tensor *
ckpt_meta(const struct ckpt *c, const char *name)
{
	return model_lookup(c, name);
}

const struct tensor *
ckpt_find(struct ckpt *c, const char *name)
{
	struct tensor *t = model_lookup(c, name);
	if (t != NULL)
		ckpt_data(c, t);
	return t;
}

const struct tensor *
ckpt_need(struct ckpt *c, const char *name, int ndim, const int64_t *shape)
{
	struct tensor *t = model_lookup(c, name);
	char a[128], b[128], w[4096];

	if (t == NULL)
		errx(EXIT_DATA, "%s: tensor \"%s\": missing", ckpt_where(c,
		    c->model.nf == 1 ? c->model.f[0].name : "model.safetensors",
		    w, sizeof w), name);
	int same = t->ndim == ndim;
	for (int d = 0; same && d < ndim; d++)
		same = t->shape[d] == shape[d];
	if (!same)
		errx(EXIT_DATA, "%s: tensor \"%s\" has shape %s, "
		    "config.json says %s", ckpt_where(c, t->file, w, sizeof w),
		    t->name,
		    tensor_shape_str(a, sizeof a, t->ndim, t->shape),
		    tensor_shape_str(b, sizeof b, ndim, shape));
	ckpt_data(c, t);
	return t;
}

/* ------------------------------------------------------------------------ */
/* Tensor data */

/*
 * Map a tensor's pages in one call rather than one page fault at a time:
 * a large part of the cost of reading from the page cache.  Only a hint;
 * older kernels refuse it, and faults do the same work.
 */
static void
populate(const struct tensor *t)
{
#ifdef MADV_POPULATE_READ
	long pg = sysconf(_SC_PAGESIZE);
	uintptr_t b = (uintptr_t)t->raw & ~(uintptr_t)(pg - 1);
	uintptr_t e = (uintptr_t)t->raw + t->n * dtype_size(t->dtype);
	if (t->n > 0)
		madvise((void *)b, e - b, MADV_POPULATE_READ);
#else
	(void)t;
#endif
}

float *
ckpt_data(struct ckpt *c, const struct tensor *ct)
{
	struct tensor *t = (struct tensor *)ct;

	(void)c;
	if (t->data != NULL)
		return t->data;
	if (t->dtype == DT_F32 && ((uintptr_t)t->raw & 3) == 0) {
		t->data = (float *)t->raw;	/* our private mapping */
		t->owned = 0;
		populate(t);
	} else {
		t->data = xreallocarray(NULL, t->n, sizeof *t->data);
		dtype_to_f32(t->dtype, t->raw, t->data, t->n);
		t->owned = 1;
	}
	return t->data;
}

void
ckpt_read(struct ckpt *c, const struct tensor *t, float *dst)
{
	(void)c;
	dtype_to_f32(t->dtype, t->raw, dst, t->n);
}

/*
 * Forget a tensor's fp32 data, and the pages of the mapping that only it
 * uses: they go back to the page cache, out of this process's memory.
 */
void
ckpt_drop(struct ckpt *c, const struct tensor *ct)
{
	struct tensor *t = (struct tensor *)ct;
	long pg = sysconf(_SC_PAGESIZE);

	(void)c;
	if (t->owned)
		free(t->data);
	t->data = NULL;
	t->owned = 0;
	uintptr_t b = (uintptr_t)t->raw, e = b + t->n * dtype_size(t->dtype);
	b = (b + pg - 1) & ~(uintptr_t)(pg - 1);
	e &= ~(uintptr_t)(pg - 1);
	if (e > b)
		madvise((void *)b, e - b, MADV_DONTNEED);
}

/* ------------------------------------------------------------------------ */
/* Other files */

const void *
ckpt_file(struct ckpt *c, const char *name, size_t *len)
{
	struct cfile *cf = find_cfile(c, name);
	if (cf == NULL)
		return NULL;
	if (len != NULL)
		*len = cf->len;
	return cf->buf;
}

/*
 * The text with every integer too large for int64 (outside strings) made a
 * real by a ".0" after its digits, or NULL when it has none.
 */
static char *
bigints_as_reals(const char *p, size_t len, size_t *outlen)
{
	static const char max[] = "9223372036854775807";
	struct strbuf b;
	int instr = 0, found = 0;
	size_t i, k;

	sb_init(&b);
	for (i = 0; i < len; i = k) {
		k = i + 1;
		if (instr) {
			if (p[i] == '\\' && k < len)
				k++;
			else if (p[i] == '"')
				instr = 0;
		} else if (p[i] == '"') {
			instr = 1;
		} else if (p[i] >= '0' && p[i] <= '9' && (i == 0 ||
		    strchr(",:[ \t\r\n-", p[i - 1]) != NULL)) {
			/* A number starts here (not its fraction or
			 * exponent): the whole digit run. */
			while (k < len && p[k] >= '0' && p[k] <= '9')
				k++;
			size_t nd = k - i;
			int real = k < len && (p[k] == '.' || p[k] == 'e' ||
			    p[k] == 'E');
			if (!real && (nd > 19 || (nd == 19 &&
			    memcmp(p + i, max, 19) > 0))) {
				sb_add(&b, p + i, nd);
				sb_add(&b, ".0", 2);
				found = 1;
				continue;
			}
		}
		sb_add(&b, p + i, k - i);
	}
	if (!found) {
		sb_free(&b);
		return NULL;
	}
	*outlen = b.len;
	return b.data;
}

json_t *
ckpt_json_parse(const void *p, size_t len, json_error_t *je)
{
	json_t *j = json_loadb(p, len, 0, je);
	size_t n;
	char *copy;

	if (j != NULL || (copy = bigints_as_reals(p, len, &n)) == NULL)
		return j;
	json_error_t je2;
	j = json_loadb(copy, n, 0, &je2);
	free(copy);
	return j;
}

json_t *
ckpt_json(struct ckpt *c, const char *name)
{
	size_t len;
	const void *p = ckpt_file(c, name, &len);
	json_error_t je;
	char w[4096];

	if (p == NULL)
		return NULL;
	json_t *j = ckpt_json_parse(p, len, &je);
	if (j == NULL)
		errx(EXIT_DATA, "%s: not JSON: %s at line %d", ckpt_where(c,
		    name, w, sizeof w), je.text, je.line);
	return j;
}

size_t
ckpt_nfiles(const struct ckpt *c)
{
	return c->nfiles;
}

const char *
ckpt_file_name(const struct ckpt *c, size_t i)
{
	return i < c->nfiles ? c->files[i].name : NULL;
}

struct st_set *
ckpt_extra(struct ckpt *c, const char *file)
{
	for (size_t i = 0; i < c->nextra; i++)
		if (strcmp(c->extra[i]->name, file) == 0)
			return c->extra[i];
	if (find_cfile(c, file) == NULL)
		return NULL;
	struct st_set *s = xcalloc(1, sizeof *s);
	c->extra = xreallocarray(c->extra, c->nextra + 1, sizeof *c->extra);
	c->extra[c->nextra++] = s;
	s->name = xstrdup(file);
	set_add_file(c, s, file);
	set_index(c, s);
	return s;
}

size_t
st_set_ntensors(const struct st_set *s)
{
	return s->nt;
}

const struct tensor *
st_set_tensor(const struct st_set *s, size_t i)
{
	return i < s->nt ? s->t[i] : NULL;
}

const struct tensor *
st_set_find(struct st_set *s, const char *name)
{
	struct tensor *t = set_lookup(s, name);
	if (t != NULL)
		ckpt_data(NULL, t);
	return t;
}

/* ------------------------------------------------------------------------ */
/* Writing */

enum form { FORM_DIR, FORM_TAR, FORM_TARZST, FORM_TARGZ };

/* A safetensors file being written: its data spooled, its header kept. */
struct wst {
	char *name;
	int fd;			/* the spool: tensor data, header not yet */
	char *spool;
	struct st_entry *e;
	size_t ne, cap;
	uint64_t off;		/* data bytes so far */
	uint64_t data0;		/* where the data starts in the spool */
};

struct wfile {
	char *name;
	unsigned char *data;
	size_t len;
};

struct ckpt_writer {
	char *path;		/* as given, for messages */
	char *dst;		/* where it goes: path, or the target of a link */
	enum form form;
	enum dtype dt;
	char *tmpdir;		/* next to path: the new directory, or spools */
	struct wst *st;
	size_t nst;
	struct wfile *files;
	size_t nfiles;
	size_t plan;		/* header bytes reserved in model.safetensors */
	json_t *base;		/* the carried checkpoint's config.json */
	unsigned char *base_raw;	/* and its bytes */
	size_t base_len;
	long ntensors, crash_after;
	struct ckpt_writer *next;	/* live writers, for cleanup at exit */
};

static struct ckpt_writer *live;

static enum form
path_form(const char *path)
{
	static const struct {
		const char *suffix;
		enum form form;
	} sfx[] = {
		{ ".tar", FORM_TAR }, { ".tar.zst", FORM_TARZST },
		{ ".tzst", FORM_TARZST }, { ".tar.gz", FORM_TARGZ },
		{ ".tgz", FORM_TARGZ },
	};
	size_t pl = strlen(path);
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		size_t sl = strlen(sfx[i].suffix);
		if (pl > sl && strcmp(path + pl - sl, sfx[i].suffix) == 0)
			return sfx[i].form;
	}
	return FORM_DIR;
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* At exit (an error, say), a writer never committed leaves nothing. */
static void
cleanup_live(void)
{
	for (struct ckpt_writer *w = live; w != NULL; w = w->next)
		rm_tree(w->tmpdir);
}

static void
unlink_live(struct ckpt_writer *w)
{
	for (struct ckpt_writer **p = &live; *p != NULL; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
}

/* What may be replaced at path: nothing, or a checkpoint of the form. */
static void
check_target(const struct ckpt_writer *w)
{
	struct stat st;
	char cfg[4096];

	if (stat(w->dst, &st) == -1)
		return;
	if (w->form != FORM_DIR) {
		if (S_ISDIR(st.st_mode))
			errx(EXIT_DATA, "%s: is a directory; an archive "
			    "cannot replace it", w->path);
		return;
	}
	if (!S_ISDIR(st.st_mode))
		errx(EXIT_DATA, "%s: exists and is not a directory", w->path);
	snprintf(cfg, sizeof cfg, "%s/config.json", w->dst);
	if (access(cfg, F_OK) == 0)
		return;
	snprintf(cfg, sizeof cfg, "%s/adapter_config.json", w->dst);
	if (access(cfg, F_OK) == 0)
		return;
	DIR *d = opendir(w->dst);
	struct dirent *de;
	int empty = 1;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	if (d != NULL)
		closedir(d);
	if (!empty)
		errx(EXIT_DATA, "%s: exists and is not a checkpoint (no "
		    "config.json or adapter_config.json); not replacing it",
		    w->path);
}

struct ckpt_writer *
ckpt_writer_open(const char *path, const char *dtype)
{
	struct ckpt_writer *w = xcalloc(1, sizeof *w);
	static int registered;

	w->path = xstrdup(path);
	w->dst = xstrdup(path);
	/*
	 * A symbolic link to a checkpoint: replace what it points to and keep
	 * the link (a directory cannot be renamed over a link).
	 */
	struct stat lst;
	char *real;
	if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) &&
	    (real = realpath(path, NULL)) != NULL) {
		free(w->dst);
		w->dst = real;
	}
	w->form = path_form(path);
	w->dt = DT_F32;
	if (dtype != NULL) {
		int dt = dtype_parse(dtype);
		if (dt < 0)
			errx(EXIT_USAGE, "%s: unknown dtype \"%s\" (f32, bf16 "
			    "or f16)", path, dtype);
		w->dt = (enum dtype)dt;
	}
	check_target(w);

	char *p1 = xstrdup(w->dst), *p2 = xstrdup(w->dst);
	char *dir = dirname(p1), *base = basename(p2);
	size_t n = strlen(dir) + strlen(base) + 32;
	w->tmpdir = xmalloc(n);
	snprintf(w->tmpdir, n, "%s/.%s.tmp-XXXXXX", dir, base);
	free(p1);
	free(p2);
	if (mkdtemp(w->tmpdir) == NULL)
		err(EXIT_DATA, "%s", w->tmpdir);

	if (!registered) {
		atexit(cleanup_live);
		registered = 1;
	}
	w->next = live;
	live = w;

	/* A test hook: die like kill -9 after so many tensors. */
	const char *crash = getenv("PREFPIPE_CKPT_CRASH_AFTER");
	w->crash_after = crash ? atol(crash) : 0;
	return w;
}

static void
check_name(const struct ckpt_writer *w, const char *name)
{
	if (name[0] == 0 || name[0] == '.' || strchr(name, '/') != NULL)
		errx(EXIT_DATA, "%s: bad file name \"%s\"", w->path, name);
}

static void
write_all(int fd, const void *p, size_t n, const char *what)
{
	const char *c = p;
	while (n > 0) {
		ssize_t k = write(fd, c, n > (1u << 30) ? 1u << 30 : n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			err(EXIT_DATA, "%s", what);
		}
		c += k;
		n -= (size_t)k;
	}
}

static struct wst *
find_wst(struct ckpt_writer *w, const char *file)
{
	for (size_t i = 0; i < w->nst; i++)
		if (strcmp(w->st[i].name, file) == 0)
			return &w->st[i];
	check_name(w, file);
	w->st = xreallocarray(w->st, w->nst + 1, sizeof *w->st);
	struct wst *s = &w->st[w->nst++];
	memset(s, 0, sizeof *s);
	s->name = xstrdup(file);
	size_t n = strlen(w->tmpdir) + strlen(file) + 16;
	s->spool = xmalloc(n);
	snprintf(s->spool, n, "%s/.%s.spool", w->tmpdir, file);
	s->fd = open(s->spool, O_RDWR | O_CREAT | O_TRUNC, 0666);
	if (s->fd == -1)
		err(EXIT_DATA, "%s", s->spool);
	/* Room for the header planned, so the data need not move later. */
	if (w->plan > 0 && strcmp(file, "model.safetensors") == 0) {
		s->data0 = w->plan;
		if (lseek(s->fd, (off_t)s->data0, SEEK_SET) == -1)
			err(EXIT_DATA, "%s", s->spool);
	}
	return s;
}

/* A new entry in s for a tensor of nbytes, checked for a unique name. */
static struct st_entry *
add_entry(struct ckpt_writer *w, struct wst *s, const char *name, int ndim,
    const int64_t *shape, enum dtype dt)
{
	if (ndim < 0 || ndim > TENSOR_MAXDIM)
		errx(EXIT_DATA, "%s: %s: tensor \"%s\": %d dimensions",
		    w->path, s->name, name, ndim);
	for (size_t i = 0; i < s->ne; i++)
		if (strcmp(s->e[i].name, name) == 0)
			errx(EXIT_DATA, "%s: %s: tensor \"%s\" added twice",
			    w->path, s->name, name);
	if (s->ne == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->e = xreallocarray(s->e, s->cap, sizeof *s->e);
	}
	struct st_entry *e = &s->e[s->ne++];
	memset(e, 0, sizeof *e);
	e->name = xstrdup(name);
	e->dtype = dt;
	e->ndim = ndim;
	uint64_t n = 1;
	for (int d = 0; d < ndim; d++) {
		e->shape[d] = shape[d];
		n *= (uint64_t)shape[d];
	}
	e->begin = s->off;
	e->end = s->off + n * dtype_size(dt);
	s->off = e->end;
	return e;
}

static void
tensor_done(struct ckpt_writer *w)
{
	if (w->crash_after > 0 && ++w->ntensors >= w->crash_after)
		kill(getpid(), SIGKILL);
}

/*
 * A weight that is not finite is refused wherever it comes from: an
 * overflow in the program that made it, or a finite fp32 value too large
 * for bf16 or f16 (src is then the value before conversion).
 */
static void
nonfinite(struct ckpt_writer *w, const struct wst *s, const char *name,
    size_t k, float src, enum dtype dt)
{
	if (isfinite(src))
		errx(EXIT_DATA, "%s: %s: tensor \"%s\": element %zu, %g, is "
		    "too large for %s", w->path, s->name, name, k, src,
		    dtype_name(dt));
	errx(EXIT_DATA, "%s: %s: tensor \"%s\": element %zu is %s: a weight "
	    "must be finite", w->path, s->name, name, k,
	    isnan(src) ? "NaN" : "infinite");
}

void
ckpt_writer_add_tensor_to(struct ckpt_writer *w, const char *file,
    const char *name, int ndim, const int64_t *shape, const float *data,
    enum dtype dt)
{
	struct wst *s = find_wst(w, file);
	struct st_entry *e = add_entry(w, s, name, ndim, shape, dt);
	size_t n = (e->end - e->begin) / dtype_size(dt);
	long long bad;

	if (dt == DT_F32) {
		if ((bad = dtype_nonfinite(DT_F32, data, n)) >= 0)
			nonfinite(w, s, name, (size_t)bad, data[bad], dt);
		write_all(s->fd, data, n * 4, s->spool);
	} else {
		/* Convert through a small buffer: no copy of the tensor. */
		enum { CHUNK = 1 << 15 };
		uint16_t buf[CHUNK];
		for (size_t i = 0; i < n; i += CHUNK) {
			size_t k = n - i < CHUNK ? n - i : CHUNK;
			dtype_from_f32(dt, data + i, buf, k);
			if ((bad = dtype_nonfinite(dt, buf, k)) >= 0)
				nonfinite(w, s, name, i + (size_t)bad,
				    data[i + bad], dt);
			write_all(s->fd, buf, k * 2, s->spool);
		}
	}
	tensor_done(w);
}

void
ckpt_writer_add_raw_to(struct ckpt_writer *w, const char *file,
    const char *name, int ndim, const int64_t *shape, const void *raw,
    enum dtype dt)
{
	struct wst *s = find_wst(w, file);
	struct st_entry *e = add_entry(w, s, name, ndim, shape, dt);

	write_all(s->fd, raw, e->end - e->begin, s->spool);
	tensor_done(w);
}

void
ckpt_writer_add_tensor(struct ckpt_writer *w, const char *name, int ndim,
    const int64_t *shape, const float *data)
{
	ckpt_writer_add_tensor_to(w, "model.safetensors", name, ndim, shape,
	    data, w->dt);
}

void
ckpt_writer_plan(struct ckpt_writer *w, const struct ckpt *like)
{
	size_t n = ckpt_ntensors(like), len;
	struct st_entry *e = xcalloc(n ? n : 1, sizeof *e);
	uint64_t off = 0;

	for (size_t i = 0; i < n; i++) {
		const struct tensor *t = ckpt_tensor(like, i);
		e[i].name = t->name;
		e[i].dtype = w->dt;
		e[i].ndim = t->ndim;
		memcpy(e[i].shape, t->shape, sizeof e[i].shape);
		e[i].begin = off;
		e[i].end = off += t->n * dtype_size(w->dt);
	}
	free(st_header(e, n, 0, &len));
	free(e);
	w->plan = len;
}

void
ckpt_writer_add_file(struct ckpt_writer *w, const char *name,
    const void *data, size_t len)
{
	struct wfile *f = NULL;

	check_name(w, name);
	for (size_t i = 0; i < w->nfiles; i++)
		if (strcmp(w->files[i].name, name) == 0) {
			f = &w->files[i];
			free(f->data);
		}
	if (f == NULL) {
		w->files = xreallocarray(w->files, w->nfiles + 1,
		    sizeof *w->files);
		f = &w->files[w->nfiles++];
		f->name = xstrdup(name);
	}
	f->data = xmalloc(len);
	memcpy(f->data, data, len);
	f->len = len;
}

/*
 * The fewest significant digits that print every real in j so it reads
 * back the same.  At least 15: every decimal of up to 15 digits comes back
 * from %.15g as itself (1e-05, 10000.0, 0.02), as Python's json writes
 * them, where the default 17 digits write 1.0000000000000001e-05.
 */
static int
real_digits(const json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;
	int p = 1;

	if (json_is_real(j)) {
		double x = json_real_value(j);
		char buf[40];
		for (p = 1; p < 17; p++) {
			snprintf(buf, sizeof buf, "%.*g", p, x);
			if (strtod(buf, NULL) == x)
				break;
		}
	} else if (json_is_object(j)) {
		json_object_foreach((json_t *)j, k, v) {
			int q = real_digits(v);
			p = q > p ? q : p;
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			int q = real_digits(v);
			p = q > p ? q : p;
		}
	}
	return p;
}

void
ckpt_writer_add_json(struct ckpt_writer *w, const char *name, const json_t *j)
{
	/* The carried config.json unchanged: its bytes as they were (huge
	 * integers, key order and number spellings included). */
	if (strcmp(name, "config.json") == 0 && w->base != NULL &&
	    json_equal(w->base, (json_t *)j)) {
		ckpt_writer_add_file(w, name, w->base_raw, w->base_len);
		return;
	}
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
	    JSON_REAL_PRECISION(real_digits(j) > 15 ? real_digits(j) : 15));
	if (s == NULL)
		errx(EXIT_DATA, "%s: %s: cannot encode JSON", w->path, name);
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n++] = '\n';
	ckpt_writer_add_file(w, name, s, n);
	free(s);
}

/* Files that are weights or training state: not carried to a new model. */
static int
is_state(const char *name)
{
	static const char *const sfx[] = {
		".safetensors", ".safetensors.index.json", ".bin", ".pt",
		".pth", ".h5", ".msgpack", ".gguf", ".onnx", ".ckpt",
		".bin.index.json",
	};
	size_t nl = strlen(name);
	if (strcmp(name, "config.json") == 0 ||
	    strcmp(name, "trainer_state.json") == 0)
		return 1;
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		size_t sl = strlen(sfx[i]);
		if (nl >= sl && strcmp(name + nl - sl, sfx[i]) == 0)
			return 1;
	}
	return 0;
}

void
ckpt_writer_carry(struct ckpt_writer *w, struct ckpt *c)
{
	struct cfile *cf = find_cfile(c, "config.json");

	json_decref(w->base);
	free(w->base_raw);
	w->base = json_deep_copy(c->config);
	w->base_len = cf->len;
	w->base_raw = xmalloc(cf->len ? cf->len : 1);
	memcpy(w->base_raw, cf->buf, cf->len);
	for (size_t i = 0; i < c->nfiles; i++)
		if (!is_state(c->files[i].name))
			ckpt_writer_add_file(w, c->files[i].name,
			    c->files[i].buf, c->files[i].len);
}

const json_t *
ckpt_writer_base_config(const struct ckpt_writer *w)
{
	return w->base;
}

enum dtype
ckpt_writer_dtype(const struct ckpt_writer *w)
{
	return w->dt;
}

/*
 * transformers wrote torch_dtype up to 4.55 and dtype since: set the one
 * the config has (both if both), torch_dtype when it has neither.
 */
void
ckpt_config_set_dtype(json_t *config, enum dtype dt)
{
	json_t *v = json_string(dtype_torch_name(dt));
	int has_new = json_object_get(config, "dtype") != NULL;

	if (has_new)
		json_object_set(config, "dtype", v);
	if (!has_new || json_object_get(config, "torch_dtype") != NULL)
		json_object_set(config, "torch_dtype", v);
	json_decref(v);
}

/* The files in the order an archive lists them: config.json first. */
static int
wfile_cmp(const void *a, const void *b)
{
	const struct wfile *x = a, *y = b;
	int cx = strcmp(x->name, "config.json") == 0;
	int cy = strcmp(y->name, "config.json") == 0;
	if (cx != cy)
		return cy - cx;
	return strcmp(x->name, y->name);
}

static void
write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	if (fd == -1)
		err(EXIT_DATA, "%s", path);
	write_all(fd, p, n, path);
	if (fsync(fd) == -1 || close(fd) == -1)
		err(EXIT_DATA, "%s", path);
}

/*
 * A safetensors file in the new directory.  When the header fits the room
 * planned before the data, it is written there and the spool becomes the
 * file; else the header goes to a new file and the data is copied after
 * it.
 */
static void
finish_st_dir(struct ckpt_writer *w, struct wst *s)
{
	char path[4096];
	size_t hl;
	unsigned char *h = st_header(s->e, s->ne, s->data0, &hl);

	snprintf(path, sizeof path, "%s/%s", w->tmpdir, s->name);
	if (s->data0 > 0 && hl == s->data0) {
		if (pwrite(s->fd, h, hl, 0) != (ssize_t)hl)
			err(EXIT_DATA, "%s", s->spool);
		free(h);
		if (fsync(s->fd) == -1 || rename(s->spool, path) == -1)
			err(EXIT_DATA, "%s", path);
		return;
	}
	free(h);
	h = st_header(s->e, s->ne, 0, &hl);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
	if (fd == -1)
		err(EXIT_DATA, "%s", path);
	write_all(fd, h, hl, path);
	free(h);
	loff_t in = (loff_t)s->data0, end = (loff_t)(s->data0 + s->off);
	while (in < end) {
		ssize_t k = copy_file_range(s->fd, &in, fd, NULL,
		    (size_t)(end - in), 0);
		if (k <= 0)
			err(EXIT_DATA, "%s", path);
	}
	if (fsync(fd) == -1 || close(fd) == -1)
		err(EXIT_DATA, "%s", path);
	if (unlink(s->spool) == -1)
		err(EXIT_DATA, "%s", s->spool);
}

static void
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd != -1) {
		fsync(fd);
		close(fd);
	}
}

/* Swap the new directory into place; the old checkpoint, if any, goes. */
static void
install_dir(struct ckpt_writer *w)
{
	check_target(w);
	if (rename(w->tmpdir, w->dst) == 0)
		return;
	if (errno != EEXIST && errno != ENOTEMPTY)
		err(EXIT_DATA, "%s", w->path);
	if (renameat2(AT_FDCWD, w->tmpdir, AT_FDCWD, w->dst,
	    RENAME_EXCHANGE) == -1)
		err(EXIT_DATA, "%s", w->path);
	rm_tree(w->tmpdir);	/* now the old checkpoint */
}

static void
archive_check(struct archive *a, int r, const struct ckpt_writer *w)
{
	if (r < ARCHIVE_WARN)
		errx(EXIT_DATA, "%s: %s", w->path, archive_error_string(a));
}

static void
archive_add(struct archive *a, const struct ckpt_writer *w, const char *dir,
    const char *name, size_t size, time_t mtime)
{
	struct archive_entry *e = archive_entry_new();
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, mtime, 0);
	archive_check(a, archive_write_header(a, e), w);
	archive_entry_free(e);
}

static void
archive_put(struct archive *a, const struct ckpt_writer *w, const void *p,
    size_t n)
{
	if (n > 0 && archive_write_data(a, p, n) != (la_ssize_t)n)
		errx(EXIT_DATA, "%s: %s", w->path, archive_error_string(a));
}

/* The archive's top directory: its name less the suffix. */
static char *
archive_dir(const char *path)
{
	static const char *const sfx[] = {
		".tar.zst", ".tar.gz", ".tar", ".tzst", ".tgz",
	};
	char *p = xstrdup(path), *b = xstrdup(basename(p));
	size_t bl = strlen(b);
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		size_t sl = strlen(sfx[i]);
		if (bl > sl && strcmp(b + bl - sl, sfx[i]) == 0) {
			b[bl - sl] = 0;
			break;
		}
	}
	free(p);
	return b;
}

/*
 * The archive holds one directory named after it ("m.tar.zst" holds "m/"),
 * so that unpacking it gives the directory checkpoint.
 */
static void
write_archive(struct ckpt_writer *w)
{
	char out[4096], *dir = archive_dir(w->dst);
	const char *env = getenv("SOURCE_DATE_EPOCH");
	time_t mtime = env ? (time_t)atoll(env) : time(NULL);
	struct archive *a = archive_write_new();

	snprintf(out, sizeof out, "%s/out", w->tmpdir);
	if (w->form == FORM_TARZST)
		archive_check(a, archive_write_add_filter_zstd(a), w);
	else if (w->form == FORM_TARGZ)
		archive_check(a, archive_write_add_filter_gzip(a), w);
	archive_check(a, archive_write_set_format_pax_restricted(a), w);
	archive_check(a, archive_write_open_filename(a, out), w);

	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, dir);
	archive_entry_set_filetype(e, AE_IFDIR);
	archive_entry_set_perm(e, 0755);
	archive_entry_set_mtime(e, mtime, 0);
	archive_check(a, archive_write_header(a, e), w);
	archive_entry_free(e);

	/* config.json, the safetensors files, then the rest. */
	size_t i = 0;
	if (w->nfiles > 0 && strcmp(w->files[0].name, "config.json") == 0) {
		archive_add(a, w, dir, "config.json", w->files[0].len, mtime);
		archive_put(a, w, w->files[0].data, w->files[0].len);
		i = 1;
	}
	enum { CHUNK = 1 << 20 };
	char *buf = xmalloc(CHUNK);
	for (size_t k = 0; k < w->nst; k++) {
		struct wst *s = &w->st[k];
		size_t hl;
		unsigned char *h = st_header(s->e, s->ne, 0, &hl);
		archive_add(a, w, dir, s->name, hl + s->off, mtime);
		archive_put(a, w, h, hl);
		free(h);
		for (uint64_t o = s->data0; o < s->data0 + s->off; ) {
			ssize_t n = pread(s->fd, buf, CHUNK, (off_t)o);
			if (n <= 0)
				err(EXIT_DATA, "%s", s->spool);
			archive_put(a, w, buf, (size_t)n);
			o += (uint64_t)n;
		}
	}
	free(buf);
	for (; i < w->nfiles; i++) {
		archive_add(a, w, dir, w->files[i].name, w->files[i].len,
		    mtime);
		archive_put(a, w, w->files[i].data, w->files[i].len);
	}
	archive_check(a, archive_write_close(a), w);
	archive_write_free(a);
	free(dir);

	int fd = open(out, O_RDONLY);
	if (fd == -1 || fsync(fd) == -1)
		err(EXIT_DATA, "%s", out);
	close(fd);
	check_target(w);
	if (rename(out, w->dst) == -1)
		err(EXIT_DATA, "%s", w->path);
}

static void
free_writer(struct ckpt_writer *w)
{
	unlink_live(w);
	for (size_t i = 0; i < w->nst; i++) {
		struct wst *s = &w->st[i];
		for (size_t k = 0; k < s->ne; k++)
			free(s->e[k].name);
		free(s->e);
		if (s->fd != -1)
			close(s->fd);
		free(s->spool);
		free(s->name);
	}
	free(w->st);
	for (size_t i = 0; i < w->nfiles; i++) {
		free(w->files[i].name);
		free(w->files[i].data);
	}
	free(w->files);
	json_decref(w->base);
	free(w->base_raw);
	free(w->tmpdir);
	free(w->dst);
	free(w->path);
	free(w);
}

void
ckpt_writer_commit(struct ckpt_writer *w)
{
	if (w->nfiles > 0)
		qsort(w->files, w->nfiles, sizeof *w->files, wfile_cmp);
	if (w->form == FORM_DIR) {
		for (size_t i = 0; i < w->nst; i++)
			finish_st_dir(w, &w->st[i]);
		for (size_t i = 0; i < w->nfiles; i++)
			write_file(w->tmpdir, w->files[i].name,
			    w->files[i].data, w->files[i].len);
		/* mkdtemp made it private; give it the usual mode. */
		mode_t um = umask(0);
		umask(um);
		if (chmod(w->tmpdir, 0777 & ~um) == -1)
			err(EXIT_DATA, "%s", w->tmpdir);
		sync_dir(w->tmpdir);
		install_dir(w);
	} else {
		write_archive(w);
		rm_tree(w->tmpdir);
	}
	char *p = xstrdup(w->dst);
	sync_dir(dirname(p));
	free(p);
	free_writer(w);
}

void
ckpt_writer_abort(struct ckpt_writer *w)
{
	rm_tree(w->tmpdir);
	free_writer(w);
}
