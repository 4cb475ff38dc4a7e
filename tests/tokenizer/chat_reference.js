// chat_reference.js: render conversations with chat templates as
// transformers does, with @huggingface/jinja (the Jinja engine of
// transformers.js), for comparing with lib/chat's built-in renderers.
//
//   node chat_reference.js TEMPLATES.json CONVERSATIONS.jsonl
//
// TEMPLATES.json maps a name to Jinja source; the part of the name before
// "~" is the renderer prefpipe should detect.  Each output line is
//   {"template": NAME, "conv": I, "gen": 0|1, "text": TEXT or null}
// null when the template raised an exception.
"use strict";
const fs = require("fs");
const { Template } = require("@huggingface/jinja");

const [tplPath, convPath] = process.argv.slice(2);
const templates = JSON.parse(fs.readFileSync(tplPath, "utf8"));
const convs = fs.readFileSync(convPath, "utf8").split("\n")
  .filter((l) => l !== "").map((l) => JSON.parse(l));
const out = [];
for (const [name, src] of Object.entries(templates)) {
  const tpl = new Template(src);
  convs.forEach((messages, i) => {
    for (const gen of [0, 1]) {
      let text = null;
      try {
        text = tpl.render({ messages, add_generation_prompt: gen === 1,
          bos_token: "<s>", eos_token: "</s>" });	// raise_exception is built in
      } catch (e) {
        text = null;
      }
      out.push(JSON.stringify({ template: name.split("~")[0], conv: i, gen,
        text }));
    }
  });
}
process.stdout.write(out.join("\n") + "\n");
