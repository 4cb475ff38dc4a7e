/*
 * judge.h: LLM-as-a-judge scoring (score --judge): a judge model reads a
 * prompt made from a template and the record, and the reward is read
 * from its distribution over the answer's first words.
 *
 * The template is a text file; {FIELD} is replaced by the record's string
 * field FIELD (dotted for nested maps), {{ and }} are literal braces.  The
 * rendered text is the user's turn of a conversation, through the judge's
 * chat template with the generation prompt (or, for a base model, plain
 * text), so the judge's answer comes next.
 *
 *   pointwise  a record with a response; {response} is it.  The labels
 *              are ratings ("1,2,3,4,5"); each label's probability is
 *              that of the judge's answer starting with it (the label as
 *              the assistant's turn, tokenized as train-step reads the
 *              conversation, up to the turn's end; every token of a
 *              label of several counts), normalised over the labels,
 *              and the reward is the expected rating.
 *   pairwise   a pair record; {response_a} and {response_b} are its two
 *              responses.  The labels name them ("A,B").  Each order is
 *              judged, chosen as A and then as B, and the reward is the
 *              mean probability that the chosen response is the better
 *              one: position bias cancels, and swapping chosen and
 *              rejected gives 1 minus the reward.
 *
 * Records are judged in batches of up to batch_tokens tokens of forward
 * passes and written in input order.  Errors end the program naming the
 * record and the field.
 */
#ifndef PREFPIPE_JUDGE_H
#define PREFPIPE_JUDGE_H

struct rec;
struct rec_writer;

/* The template alone: loaded (braces checked) and rendered. */
char *judge_template_load(const char *path);
/*
 * tmpl with r's fields in; a and b stand for {response_a} and
 * {response_b} when pairwise, a for {response} when not.  A missing or
 * non-string field ends the program naming the record and field.
 */
char *judge_template_render(const char *tmpl, int pairwise,
    const struct rec *r, const char *a, size_t alen, const char *b,
    size_t blen);
/* The string at path (dotted) in r; missing or another type ends the
 * program naming the record and field. */
const char *judge_field(const struct rec *r, const char *path, size_t *len);

struct judge_opts {
	const char *template_path;
	int pairwise;
	const char *labels;	/* comma-separated; NULL: "1,2,3,4,5" or
				 * "A,B" */
	const char *as;		/* the field written */
	const char *chat;	/* --chat-template NAME, or NULL */
	const struct json_t *targs;	/* --template-arg, or NULL */
	long batch_tokens;	/* <= 0: 4096 */
	const char *weights;	/* --weights TYPE (model_from_ckpt_opts), NULL: auto */
	const char *compute;	/* --compute TYPE (model_set_compute), NULL: f32 */
};

struct judge;

struct judge *judge_new(const char *ckpt, const struct judge_opts *o);
/* Judge r (the judge takes it over); written to w in input order. */
void judge_add(struct judge *j, struct rec *r, struct rec_writer *w);
void judge_flush(struct judge *j, struct rec_writer *w);
/* Tokens run through the model so far. */
unsigned long long judge_tokens(const struct judge *j);
void judge_free(struct judge *j);

#endif
