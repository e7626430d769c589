import assert from "node:assert/strict";
import { http } from "../_helpers/clients.ts";
import { withServer } from "../_helpers/server.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLIENT_DIR = new URL("../../src/client/", import.meta.url).pathname;
const BUNDLE = new URL("../../static/client.js", import.meta.url).pathname;

Deno.test("static/client.js is what `deno task build:client` makes from src/client", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-bundle-" });
  try {
    const out = `${dir}/client.js`;
    const task = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks["build:client"];
    const args = (task as string).split(" ").slice(1).map((a) =>
      a === "static/client.js" ? out : a
    );
    const built = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    assert.equal(
      await Deno.readTextFile(BUNDLE),
      await Deno.readTextFile(out),
      "static/client.js is stale: run `deno task build:client` and commit it",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the server serves the browser client at /client.js", async () => {
  await withServer({}, async (server) => {
    const reply = await http(server.url, "GET", "/client.js");
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(reply.text, await Deno.readTextFile(BUNDLE));
    assert.match(reply.text, /export \{[^}]*\bwatchJob\b/);
  });
});

Deno.test("src/client uses only web-standard APIs (no Deno or Node ones)", async () => {
  for await (const entry of Deno.readDir(CLIENT_DIR)) {
    const source = await Deno.readTextFile(`${CLIENT_DIR}${entry.name}`);
    const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bDeno\./, `${entry.name} uses Deno`);
    assert.doesNotMatch(
      code,
      /from\s+"(node:|npm:|jsr:|https?:)/,
      `${entry.name} imports a package`,
    );
    assert.doesNotMatch(code, /\b(process|Buffer|require)\b[.(]/, `${entry.name} uses Node`);
    for (const [, path] of code.matchAll(/from\s+"([^"]+)"/g)) {
      assert.match(path!, /^\.\/[a-z_]+\.ts$/, `${entry.name} imports ${path} outside src/client`);
    }
  }
});
