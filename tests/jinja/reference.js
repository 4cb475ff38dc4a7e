// reference.js: expected renderings for tests/jinja_reference.sh, from
// @huggingface/jinja (the Jinja engine of transformers.js).  Run by hand
// where node and the npm packages are (see README):
//
//   node reference.js features FEATURES.json CONTEXT.json > ref/features.jsonl
//   node reference.js chats TEMPLATE_DIR TOKENS.json CONVS.jsonl > ref/chats.jsonl
//
// features: each template of FEATURES.json (name -> source) rendered with
// CONTEXT.json's variables; one line {"name", "text"} or {"name", "error"}.
// chats: each TEMPLATE_DIR/NAME.jinja with each conversation of
// CONVS.jsonl ({"messages", "tools"?, "kwargs"?}) and add_generation_prompt
// false, then true, as transformers calls it (tools and documents null
// when absent, bos_token and eos_token from TOKENS.json); one line
// {"template", "conv", "gen", "text"} or "error" in place of "text" when
// the template raised (error: true, the message is the engine's own).
"use strict";
const fs = require("fs");
const path = require("path");
const { Template } = require("@huggingface/jinja");

function render(src, ctx) {
  try {
    return { text: new Template(src).render(ctx) };
  } catch (e) {
    return { error: true };
  }
}

const [mode, ...args] = process.argv.slice(2);
const out = [];
if (mode === "features") {
  const feats = JSON.parse(fs.readFileSync(args[0], "utf8"));
  const ctx = JSON.parse(fs.readFileSync(args[1], "utf8"));
  for (const [name, src] of Object.entries(feats))
    out.push(JSON.stringify({ name, ...render(src, ctx) }));
} else if (mode === "chats") {
  const [dir, tokPath, convPath] = args;
  const tokens = JSON.parse(fs.readFileSync(tokPath, "utf8"));
  const convs = fs.readFileSync(convPath, "utf8").split("\n")
    .filter((l) => l !== "").map((l) => JSON.parse(l));
  for (const name of Object.keys(tokens)) {
    const src = fs.readFileSync(path.join(dir, name + ".jinja"), "utf8");
    convs.forEach((c, i) => {
      for (const gen of [0, 1]) {
        const ctx = { messages: c.messages, tools: c.tools ?? null,
          documents: null, add_generation_prompt: gen === 1,
          bos_token: tokens[name].bos_token ?? "",
          eos_token: tokens[name].eos_token ?? "", ...(c.kwargs ?? {}) };
        out.push(JSON.stringify({ template: name, conv: i, gen,
          ...render(src, ctx) }));
      }
    });
  }
} else {
  process.stderr.write("usage: reference.js features|chats ...\n");
  process.exit(2);
}
process.stdout.write(out.join("\n") + "\n");
