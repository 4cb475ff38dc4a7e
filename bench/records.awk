# records.awk: the benches' records of pseudo-random token ids in
# [3, vocab) (vocab default 4096), one stream of rand() from srand(seed)
# (default 1):
#
#   awk -v kind=pairs [-v n=8] -f bench/records.awk
#       pairs: 32 prompt tokens, chosen and rejected of 128, with
#       reference sums -1000 and -1010 (for DPO without --ref)
#   kind=sft:   32 prompt and 128 response tokens
#   kind=score: BOS (256) and 95 prompt tokens, 32 response tokens
# pairs and sft take other lengths from -v prompt=P -v response=R.
function tok(n,   s, i) {
	s = ""
	for (i = 0; i < n; i++)
		s = s (i ? "," : "") int(3 + rand() * (vocab - 3))
	return "[" s "]"
}
BEGIN {
	srand(seed ? seed : 1)
	if (n == "")
		n = 8
	if (vocab == "")
		vocab = 4096
	if (prompt == "")
		prompt = 32
	if (response == "")
		response = 128
	for (p = 0; p < n; p++)
		if (kind == "pairs")
			printf "{\"id\":\"%d\",\"prompt_tokens\":%s," \
			    "\"chosen\":{\"response_tokens\":%s," \
			    "\"ref_logprob\":-1000}," \
			    "\"rejected\":{\"response_tokens\":%s," \
			    "\"ref_logprob\":-1010}}\n", p, tok(prompt),
			    tok(response), tok(response)
		else if (kind == "sft")
			printf "{\"id\":\"%d\",\"prompt_tokens\":%s," \
			    "\"response_tokens\":%s}\n", p, tok(prompt),
			    tok(response)
		else if (kind == "score")
			printf "{\"id\":%d,\"prompt_tokens\":%s," \
			    "\"response_tokens\":%s}\n", p,
			    "[256," substr(tok(95), 2), tok(32)
		else {
			print "records.awk: kind is pairs, sft or score" >"/dev/stderr"
			exit 2
		}
}
