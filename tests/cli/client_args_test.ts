import assert from "node:assert/strict";
import {
  connectionOf,
  DEFAULT_SERVER,
  parseCommandLine,
  secondsFlag,
  statusPageUrl,
} from "../../src/cli/client_args.ts";
import { ConfigError } from "../../src/config.ts";

const SPEC = { values: ["server", "token", "id"], booleans: ["json"] };

Deno.test("parseCommandLine splits flags, positionals and what follows --", () => {
  const line = parseCommandLine([
    "job-1",
    "--server",
    "http://x",
    "--json",
    "--id=a",
    "--",
    "ls",
    "-l",
  ], SPEC);
  assert.deepEqual([...line.flags], [["server", "http://x"], ["json", true], ["id", "a"]]);
  assert.deepEqual(line.positional, ["job-1"]);
  assert.deepEqual(line.rest, ["ls", "-l"]);
  assert.equal(parseCommandLine(["-h"], SPEC).flags.get("help"), true);
});

Deno.test("parseCommandLine with stopAtPositional leaves the command's own flags alone", () => {
  const line = parseCommandLine(["--id", "x", "grep", "--count", "a"], {
    ...SPEC,
    stopAtPositional: true,
  });
  assert.deepEqual(line.rest, ["grep", "--count", "a"]);
  assert.equal(line.flags.get("id"), "x");
});

Deno.test("parseCommandLine refuses unknown flags, missing values and values on booleans", () => {
  assert.throws(() => parseCommandLine(["--nope"], SPEC), ConfigError);
  assert.throws(() => parseCommandLine(["--server"], SPEC), /needs a value/);
  assert.throws(() => parseCommandLine(["--json=1"], SPEC), /takes no value/);
});

Deno.test("connectionOf prefers flags, then JOBWIRE_SERVER and JOBWIRE_TOKEN, then the default", () => {
  const none = parseCommandLine([], SPEC);
  assert.deepEqual(connectionOf(none, {}), { server: DEFAULT_SERVER, token: undefined });
  assert.deepEqual(
    connectionOf(none, { JOBWIRE_SERVER: "https://j.example/base/", JOBWIRE_TOKEN: "t1" }),
    {
      server: "https://j.example/base",
      token: "t1",
    },
  );
  const flags = parseCommandLine(["--server", "http://a:1", "--token", "t2"], SPEC);
  assert.deepEqual(connectionOf(flags, { JOBWIRE_SERVER: "http://b:2", JOBWIRE_TOKEN: "t1" }), {
    server: "http://a:1",
    token: "t2",
  });
  assert.deepEqual(connectionOf(none, { JOBWIRE_SERVER: "", JOBWIRE_TOKEN: " " }), {
    server: DEFAULT_SERVER,
    token: undefined,
  });
});

Deno.test("connectionOf takes a token pasted with its header's word as the token", () => {
  const none = parseCommandLine([], SPEC);
  for (const pasted of ["Bearer eyJabc", "bearer  eyJabc ", " eyJabc"]) {
    assert.equal(connectionOf(none, { JOBWIRE_TOKEN: pasted }).token, "eyJabc", pasted);
    const flag = parseCommandLine(["--token", pasted], SPEC);
    assert.equal(connectionOf(flag, {}).token, "eyJabc", pasted);
  }
  assert.equal(connectionOf(none, { JOBWIRE_TOKEN: "Bearer " }).token, undefined);
});

Deno.test("connectionOf refuses a server that is not an http(s) URL", () => {
  assert.throws(
    () => connectionOf(parseCommandLine(["--server", "localhost:8080"], SPEC), {}),
    ConfigError,
  );
  assert.throws(
    () => connectionOf(parseCommandLine(["--server", "ftp://x"], SPEC), {}),
    /http or https/,
  );
});

Deno.test("statusPageUrl is the server's #/jobs/ID page", () => {
  assert.equal(statusPageUrl("http://h:1", "a b"), "http://h:1/#/jobs/a%20b");
});

Deno.test("secondsFlag reads seconds with or without a unit", () => {
  const of = (v: string) => secondsFlag(parseCommandLine(["--id", v], SPEC), "id");
  assert.equal(of("30"), 30);
  assert.equal(of("2.5"), 2.5);
  assert.equal(of("10m"), 600);
  assert.equal(of("500ms"), 0.5);
  assert.throws(() => of("soon"), ConfigError);
  assert.equal(secondsFlag(parseCommandLine([], SPEC), "id"), undefined);
});
