/**
 * The Python client (`clients/python/jobwire.py`) against a real server: its unittest suite
 * runs in `python3` with the server's URL and a token, and must run every test it has.
 */
import assert from "node:assert/strict";
import { withServer } from "../_helpers/server.ts";
import { AUTH, tokenFor } from "../_helpers/tokens.ts";
import { findPython } from "../_helpers/python.ts";

const DIR = new URL("../../clients/python/", import.meta.url).pathname;

const PYTHON = findPython();

Deno.test({
  name: "the Python client's tests pass against a real server (producer, watcher, retries)",
  ignore: PYTHON === undefined,
  async fn() {
    const source = await Deno.readTextFile(`${DIR}test_jobwire.py`);
    const expected = [...source.matchAll(/^ {4}def test_/gm)].length;
    assert.ok(expected >= 10, `only ${expected} tests found`);
    await withServer({ ...AUTH }, async (server) => {
      const out = await new Deno.Command(PYTHON!, {
        args: ["-m", "unittest", "-v", "test_jobwire"],
        cwd: DIR,
        env: {
          JOBWIRE_URL: server.url,
          JOBWIRE_TOKEN: await tokenFor("python", "read write"),
          PYTHONDONTWRITEBYTECODE: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const report = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, report);
      assert.match(report, new RegExp(`Ran ${expected} tests`), report);
      assert.match(report, /\nOK\s*$/, report);
    });
  },
});

Deno.test({
  name: "the README's Python example runs against a real server as written",
  ignore: PYTHON === undefined,
  async fn() {
    const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
    const section = readme.slice(readme.indexOf("### Python"));
    const example = /```python\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(
      example !== undefined && example.includes('Client("http://localhost:8080"'),
      "the README's example moved",
    );
    await withServer({ ...AUTH }, async (server) => {
      const out = await new Deno.Command(PYTHON!, {
        args: ["-c", example.replace("http://localhost:8080", server.url)],
        cwd: DIR,
        env: {
          JOBWIRE_TOKEN: await tokenFor("python", "read write"),
          PYTHONDONTWRITEBYTECODE: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const printed = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, printed + new TextDecoder().decode(out.stderr));
      // What the watcher printed: every event of the job, in order.
      assert.deepEqual(printed.trim().split("\n").map((line) => line.split(" ", 2).join(" ")), [
        "1 status",
        "2 log",
        "3 progress",
        "4 training_progress",
        "5 result",
        "6 status",
      ]);
    });
  },
});
