/**
 * The README is part of the product: its set-up commands and its configuration table must
 * match the code.
 */
import assert from "node:assert/strict";
import { envName, type OptionName, OPTIONS, shownDefault } from "../src/config.ts";

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

Deno.test("README starts with the run and test commands for a machine with only npm", () => {
  const head = README.split("\n").slice(0, 15).join("\n");
  assert.match(head, /npx -y deno@2\.9\.6 task start/);
  assert.match(head, /npx -y deno@2\.9\.6 task test/);
});

Deno.test("README configuration table lists every option with its environment variable", () => {
  const section = README.slice(README.indexOf("## Configuration"));
  for (const name of Object.keys(OPTIONS)) {
    const row = section.split("\n").find((line) => line.startsWith(`| \`--${name}\``));
    assert.ok(row, `--${name} is missing from the README configuration table`);
    assert.ok(row.includes(`\`${envName(name)}\``), `${envName(name)} is missing from its row`);
    // `--help` prints the same meaning and default (the table is what users read first).
    const [, , , shown, meaning] = row.split("|").map((cell) => cell.trim());
    assert.equal(
      shown?.replaceAll("`", ""),
      shownDefault(name as OptionName),
      `--${name}'s default`,
    );
    assert.equal(meaning, OPTIONS[name as OptionName].help, `--${name}'s meaning`);
  }
});

Deno.test("README's TypeScript examples of the client library type-check as written", async () => {
  const blocks = [...README.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 2, `found ${blocks.length} examples`);
  const dir = await Deno.makeTempDir({ prefix: "jobwire-readme-" });
  try {
    const client = new URL("../src/client/mod.ts", import.meta.url).href;
    const files: string[] = [];
    for (const [i, block] of blocks.entries()) {
      const file = `${dir}/example_${i}.ts`;
      await Deno.writeTextFile(file, block.replaceAll('"./src/client/mod.ts"', `"${client}"`));
      files.push(file);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--config", new URL("../deno.json", import.meta.url).pathname, ...files],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
