/*
 * model.h: the decoder-only transformer of the Llama, Qwen2, Qwen3,
 * Gemma 2 and Gemma 3 (text) families, as Hugging Face transformers defines them
 * (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, and their
 * ForSequenceClassification reward heads; Gemma2ForCausalLM and
 * Gemma3ForCausalLM), in fp32 on the CPU (frozen matrices may be held
 * in bf16 or f16, and are computed with in fp32).
 *
 * Three parts, in the order a program uses them:
 *
 *   1. model_config: the hyper-parameters, read from and written to an HF
 *      config.json, and the HF tensor names and shapes they imply (the
 *      architecture table, lib/model/arch.h).
 *   2. struct model: every parameter in one allocation, the gradients of
 *      the trainable ones in a parallel one (so an optimizer or an
 *      all-reduce sees two flat float arrays), a forward pass over a packed
 *      batch of sequences returning per-token log-probabilities, and a
 *      backward pass from the gradient of a loss with respect to those
 *      log-probabilities.
 *   3. Generation: a per-sequence KV cache that can be forked, and a pass
 *      that extends B caches at once so each matmul is matrix-matrix.
 *
 * The arithmetic is one decoder block (lib/model/model_impl.h) over the
 * operations of a backend (lib/backend/backend.h): backend_cpu for
 * training and prefill, backend_cpu_decode for sampling's decoding steps.
 *
 * Errors in a model's data (a config the code cannot honour, a missing
 * tensor) end the program with status 1 through errx(3), except in
 * model_config_from_json, which returns them so a caller can add context.
 */
#ifndef PREFPIPE_MODEL_H
#define PREFPIPE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "backend/backend.h"

/* ------------------------------------------------------------------------ */
/* 1. Configuration */

#include "model/hparams.h"
#include "model/model_config.h"


/* ------------------------------------------------------------------------ */
/* 2. The model: parameters, gradients, forward and backward */

struct model_acts;	/* activations of the last forward pass */

/*
 * The parameters are two named sets, each flat: the trainable tensors
 * laid out first, params[0 .. ntrain), with their gradients grads (ntrain)
 * in the same layout, then the frozen ones, which have no gradient memory
 * and cost no dW product in model_backward.  Everything is trainable
 * until model_set_trainable says otherwise; then ntrain == nparams and the
 * layout is model_tensors' order.  An optimizer steps params and grads
 * over ntrain floats.
 */
struct model {
	struct model_config cfg;
	struct model_tensor *tensors;	/* (ntensors) HF order; offsets say
					 * where each lies in params */
	int ntensors;
	size_t nparams;		/* floats in params: every tensor held fp32 */
	size_t ntrain;		/* trainable floats, params[0 .. ntrain) */
	float *params;		/* (nparams) every fp32 weight, one
				 * allocation */
	float *grads;		/* (ntrain) NULL until model_zero_grad */
	/*
	 * Frozen matrices held in 16 bits (model_hold, model_from_ckpt_opts) lie
	 * outside params: in half, or in a checkpoint's mapping, which
	 * hold keeps alive until model_free (release(hold)).
	 */
	uint16_t *half;		/* (nhalf) */
	size_t nhalf;
	void *hold;
	void (*release)(void *);
	struct model_acts *acts;	/* private */
};

/* A model with parameters allocated (uninitialised) for cfg. */
struct model *model_new(const struct model_config *cfg);
/*
 * For loaders (model_from_ckpt_opts, model_from_ckpt_with): every tensor
 * frozen, tensor i held in dt[i] (DT_F32, or 16 bits for a holdable
 * matrix); a 16-bit one at at[i] where at and at[i] are not NULL (set hold
 * and release to keep it alive), else in half, uninitialised like params.
 */
struct model *model_new_held(const struct model_config *cfg, const int *dt,
    const uint16_t *const *at);
void model_free(struct model *m);

/*
 * Deterministic random initialisation: matrices N(0, 0.02^2), RMSNorm
 * weights 1, biases 0.  The same seed gives the same weights everywhere.
 */
void model_init_random(struct model *m, uint64_t seed);
/*
 * The same with other spreads: each parameter, in layout order, gets
 * base + std * z with one standard normal z drawn per element (splitmix64
 * and Box-Muller: z = sqrt(-2 ln u1) cos(2 pi u2)); base is 1 for norm
 * weights, else 0; std is mat_std for matrices and aux_std for norm
 * weights and biases.  Tests use large spreads to exercise every path.
 */
void model_init_normal(struct model *m, uint64_t seed, double mat_std,
    double aux_std);
/* The generator behind it: a standard normal from *state. */
double model_rng_normal(uint64_t *state);

/*
 * LoRA (a config with cfg.lora, lib/model/model_lora.h): the adapters
 * initialised as PEFT does (A uniform in +-1/sqrt(in) from seed, B zero);
 * switched off or on (off, the model is its base: DPO's reference
 * without a second copy of the weights).
 *
 * LoRA dropout (cfg.lora.dropout > 0) applies to the next model_forward
 * (and its backward) only when model_lora_dropout gave it keys (N), one
 * per token of its batch, from which the token's masks are drawn: the
 * same token the same key, whatever the packing.  Without keys there is
 * none (evaluation, as torch's eval mode), and never in model_extend.
 */
void model_lora_init(struct model *m, uint64_t seed);
void model_lora_enable(struct model *m, int on);
void model_lora_dropout(struct model *m, const uint64_t *keys);

/* The parameter tensor called name (HF naming), or NULL. */
const struct model_tensor *model_tensor(const struct model *m,
    const char *name);
static inline float *model_param(struct model *m, const struct model_tensor *t)
{ return m->params + t->offset; }

/*
 * Checkpoints (lib/checkpoints/checkpoint.h): a model from a loaded checkpoint's
 * config.json and tensors (a missing or misshapen tensor is an error), and
 * a model written as config.json plus its tensors.
 */
struct ckpt;
struct ckpt_writer;
struct model *model_from_ckpt(struct ckpt *c);
void model_save(const struct model *m, struct ckpt_writer *w);

/*
 * Weights in 16 bits.  A frozen matrix (model_tensor_holdable: the
 * projections, the embedding and lm_head; never a norm, a bias or the
 * small reward head) may be held in bf16 or f16, half the memory, and
 * half the bytes a decoding step reads; the operations widen it to fp32
 * inside and sum in fp32 (lib/backend/backend.h), so a model computes
 * what it would with those values held in fp32.
 *
 * model_hold(m, dt) holds every frozen matrix in dt: fp32 ones rounded
 * to nearest, ties to even (f32_to_bf16, f32_to_f16), 16-bit ones of the
 * other type through fp32; DT_F32 widens them all back into params.
 * model_set_trainable widens a tensor it makes trainable.
 */
int model_tensor_holdable(const struct model_tensor *t);
void model_hold(struct model *m, int dt);

/*
 * The arithmetic of the products with bf16-held weights: MODEL_COMPUTE_F32
 * (the default) widens each weight to fp32, so the results are fp32's on
 * the same values; MODEL_COMPUTE_BF16 (--compute bf16) also rounds the
 * activations that meet them to bf16, as the CPU's bf16 dot-product
 * instructions take them (backend.h, DT_XBF16).  f32 and f16 weights, and
 * every backward product, are unchanged.  It stays through model_hold and
 * model_set_trainable.
 */
enum { MODEL_COMPUTE_F32, MODEL_COMPUTE_BF16 };
void model_set_compute(struct model *m, int compute);
/* "f32", "bf16" (any case) into *compute; -1 if neither. */
int model_compute_parse(const char *s, int *compute);

/*
 * Loading for use, not training: every tensor frozen, the matrices held
 * in weights (DT_F32, DT_BF16, DT_F16), or with MODEL_WEIGHTS_AUTO as the
 * checkpoint stores them (a bf16 or f16 checkpoint's in 16 bits, an fp32
 * one's in fp32).  A matrix held in the type it is stored in, in a
 * mapped (directory) or read (archive) checkpoint, 2-byte aligned, is
 * used where it lies, without a copy: the model then keeps c alive
 * (model_free releases it), and the caller may ckpt_free c as always.
 */
#define MODEL_WEIGHTS_AUTO (-1)
struct model_load_opts {
	int weights;		/* enum dtype, or MODEL_WEIGHTS_AUTO */
	int compute;		/* MODEL_COMPUTE_F32 (0) or _BF16 */
};
struct model *model_from_ckpt_opts(struct ckpt *c,
    const struct model_load_opts *o);
/* "auto", "f32", "bf16", "f16" (any case) into *weights; -1 if none. */
int model_weights_parse(const char *s, int *weights);
/* The type model_from_ckpt_opts holds c's matrices in under o: weights, or c's. */
int model_load_dtype(struct ckpt *c, const struct model_load_opts *o);

/*
 * Freeze every tensor for which trainable(t, arg) is 0, and make the rest
 * trainable: the trainable tensors are moved to the front of params (in
 * HF order among themselves, the frozen ones after), tensors[].offset and
 * .trainable updated, and the gradients dropped, to be allocated for
 * ntrain floats by the next model_zero_grad.  A sample_step made before
 * must be made again.  Returns ntrain.
 */
size_t model_set_trainable(struct model *m,
    int (*trainable)(const struct model_tensor *t, void *arg), void *arg);

/* Allocate (if needed) and zero the gradients of the trainable tensors. */
void model_zero_grad(struct model *m);

/*
 * A batch: nseq sequences packed one after another, N = sum of len[]
 * tokens in all.  Each sequence attends only to itself, causally, and its
 * positions start at 0.  targets[t] is the token whose log-probability
 * position t predicts (usually tokens[t+1]), or -1 (any negative,
 * such as HF's -100) for none.
 */
struct model_batch {
	int nseq;
	const int *len;		/* (nseq) */
	const int *tokens;	/* (N) */
	const int *targets;	/* (N), or NULL: no log-probabilities */
};

static inline int
model_batch_tokens(const struct model_batch *b)
{
	int n = 0;
	for (int i = 0; i < b->nseq; i++)
		n += b->len[i];
	return n;
}

/*
 * Forward pass.  logprobs (N), if not NULL, gets log p(targets[t]) at every
 * position (0 where targets[t] is -1, and everywhere without targets),
 * computed with a stable log-sum-exp.  The activations are kept for
 * model_backward: the classifier's (N, vocab) logits are not among them
 * (it runs over pieces of rows, each piece's logits made again in the
 * backward pass), so activation memory does not grow with the vocabulary
 * (model_act_bytes).  The classification scores (N, num_labels) can be
 * read until the next forward.
 *
 * Threads: OpenMP's (OMP_NUM_THREADS).  The model sets OpenBLAS to one
 * thread and cuts large products between OpenMP threads itself, so
 * results are bit-identical whatever the thread count.
 */
void model_forward(struct model *m, const struct model_batch *b,
    float *logprobs);
const float *model_scores(const struct model *m);	/* (N, num_labels) */
/*
 * The logits (N, vocab) of the last forward, computed again from the
 * final norm's output into the caller's logits, the same numbers the
 * log-probabilities came from (tests compare them with PyTorch's).
 */
void model_logits(struct model *m, float *logits);

/*
 * Recomputation, from the next forward on: with on, the forward keeps
 * only each layer's input (N, dim) and the backward runs each layer's
 * forward again before its backward: memory for L * N * dim floats and
 * one layer's activations instead of L layers', for a forward more of
 * compute.  The gradients are the same bits.
 */
void model_set_recompute(struct model *m, int on);
/*
 * For the next model_forward only: dlogprobs (N), d loss / d logprob of
 * each target token, when the loss knows it before the pass (SFT's mean
 * NLL: a constant a token).  The classifier's backward then runs in the
 * forward, a piece at a time while the piece's logits are there, and
 * model_backward, given the same dlogprobs, starts below it: the logits
 * are computed once instead of twice, and the gradients are the same
 * bits.  The head's gradients are added in the forward, so
 * model_zero_grad comes before it; dlogprobs must stay as it is until
 * model_backward.
 */
void model_set_head_grad(struct model *m, const float *dlogprobs);
/*
 * Rows of the classifier's logits computed at once (0: the default,
 * about 64M logits; tests cut tiny vocabularies into several pieces).
 */
void model_set_head_rows(struct model *m, int rows);

/*
 * Backward pass of the last forward: dlogprobs (N) is d loss / d logprob
 * of each target token (ignored where the target is -1; NULL: none, and
 * the classifier is not run again);
 * dscores (N, num_labels), if not NULL, is d loss / d score.  Gradients
 * are added to m->grads (call model_zero_grad first); frozen tensors get
 * none, though the gradient flows through them to what lies below.
 */
void model_backward(struct model *m, const float *dlogprobs,
    const float *dscores);

/*
 * FLOPs of a forward pass over sequences of the given lengths: every
 * multiply-add of the matmuls and of causal attention counted as 2.  The
 * backward pass costs twice the forward.
 */
double model_flops_forward(const struct model_config *cfg, int nseq,
    const int *len);

static inline double
model_flops_backward(const struct model_config *cfg, int nseq, const int *len)
{ return 2 * model_flops_forward(cfg, nseq, len); }

/*
 * Bytes a decoding step must read: every weight once, plus the keys and
 * values of each of the B sequences up to its position pos[i].
 */
double model_bytes_decode(const struct model_config *cfg, int B,
    const int *pos);

/*
 * Bytes of the activations and backward scratch of a training pass over a
 * batch, with the default classifier pieces, recomputing or not.
 */
size_t model_act_bytes(const struct model_config *cfg, int nseq,
    const int *len, int recompute);

/* ------------------------------------------------------------------------ */
/* 3. Generation with a KV cache */

/* struct kv_cache, the keys and values one sequence has seen, is
 * lib/backend/backend.h's: a backend reads and writes it.  A cache of a
 * model whose every layer has a sliding window keeps only the widest
 * window's positions (a ring), however large cap. */

struct kv_cache *kv_cache_new(const struct model_config *cfg, int cap);
void kv_cache_free(struct kv_cache *kv);
/*
 * A cache for cap positions whose first base->len are base's, read in
 * place: base must not change while the fork lives.  Only sample_step
 * (lib/sampling/sample.h) decodes forks; model_extend and kv_cache_copy take whole
 * caches.
 */
struct kv_cache *kv_cache_fork(const struct kv_cache *base, int cap);
/*
 * Make dst a copy of src's filled prefix (dst->cap >= src->len): a context
 * read once, then continued in several ways (score --flr).
 */
void kv_cache_copy(struct kv_cache *dst, const struct kv_cache *src);
static inline void kv_cache_reset(struct kv_cache *kv) { kv->len = 0; }

/*
 * Feed ntok[i] new tokens to cache kv[i] for i < B (tokens packed one
 * sequence after another), appending their keys and values.  logits
 * (B, vocab) gets the logits after the last new token of each sequence.
 * A prompt is one call with B = 1; a decoding step over B samples is one
 * call with every ntok[i] = 1.
 */
void model_extend(struct model *m, struct kv_cache **kv, int B,
    const int *ntok, const int *tokens, float *logits);

/*
 * The same pass on another backend and its context (be->ctx_new()), as
 * sample_step does with backend_cpu_decode; be's operations decide how the
 * numbers are summed.  Not at the same time as another pass of m.
 */
void model_extend_backend(struct model *m, const struct backend *be,
    void *ctx, struct kv_cache **kv, int B, const int *ntok,
    const int *tokens, float *logits);

/*
 * The policy's fingerprint: FNV-1a (hash_bytes) over the fp32 parameters
 * in 1 MiB pieces, hashed in parallel, then hashed together; touching
 * every page, it also brings a mapped checkpoint's weights in.  With
 * matrices held in 16 bits their stored bytes are hashed too, each
 * tensor the same way, in HF order, after params: an fp32 model's
 * fingerprint is what it always was.
 */
uint64_t model_params_hash(const struct model *m);

#endif
