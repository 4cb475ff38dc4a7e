/*
 * trl.h: TRL's dataset formats to prefpipe's records and back
 * (recs from-trl, recs to-trl).
 *
 * TRL names a dataset by its type (language modeling, prompt-only,
 * prompt-completion, preference, unpaired preference) and its format:
 * standard (strings) or conversational (lists of {"role", "content"}
 * messages).  prefpipe's records say the same with other fields:
 *
 *   TRL                                  prefpipe
 *   text / messages                      unchanged
 *   prompt: "s"                          prompt: "s"
 *   prompt: [messages]                   messages: [messages]
 *   completion: "s" or [assistant msg]   response: "s"
 *   chosen, rejected: likewise           chosen: {response}, rejected: ...
 *   label (unpaired)                     label
 *
 * A preference record without a prompt has an implicit one: the part
 * chosen and rejected share.  For message lists it is the messages they
 * share; for strings the longest common prefix, cut back to the end of
 * the last "\n\nAssistant:" in it (HH-RLHF's turn marker) when there is
 * one, else, as TRL's extract_prompt does, before a space it ends with.
 *
 * Every other field passes through in its place; a record without an
 * "id" gets one, its ordinal, in front (pair --from-strings does the
 * same).  Errors end the program naming the input, record and field.
 */
#ifndef PREFPIPE_TRL_H
#define PREFPIPE_TRL_H

#include <stdint.h>

struct rec;

enum trl_type { TRL_LM, TRL_PROMPT, TRL_COMPLETION, TRL_PREFERENCE,
	TRL_UNPAIRED };

/* "language-modeling", "prompt-only", ... as TRL's documentation says. */
const char *trl_type_name(enum trl_type t);

/*
 * The prefpipe form of TRL record in, into out (initialised here; the
 * caller frees it).  ordinal numbers the record across the inputs, for
 * the id.  Returns the record's type.
 */
enum trl_type trl_to_rec(const struct rec *in, uint64_t ordinal,
    struct rec *out);

/*
 * TRL's form of a prefpipe record: a pair (preference), a prompt with a
 * response (prompt-completion, or unpaired preference with a label), or
 * a prompt alone.  Text is needed: a response held only as tokens is an
 * error.  Fields TRL has no use for inside chosen and rejected (token
 * ids, log-probs) are dropped; top-level ones pass through.
 */
enum trl_type trl_from_rec(const struct rec *in, struct rec *out);

#endif
