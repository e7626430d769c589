import assert from "node:assert/strict";
import { log, redactUrl } from "../src/log.ts";

Deno.test("redactUrl hides a URL's user and password, and parameters named as credentials however their names are written", () => {
  const cases: [string, string][] = [
    ["/ws?token=abc", "/ws?token=[redacted]"],
    ["/ws?jobs=a&TOKEN=abc&x=1", "/ws?jobs=a&TOKEN=[redacted]&x=1"],
    ["/ws?%74oken=abc", "/ws?%74oken=[redacted]"],
    ["/ws?tic%6Bet=abc#frag", "/ws?tic%6Bet=[redacted]#frag"],
    ["/a?access_token=abc&token=def", "/a?access_token=[redacted]&token=[redacted]"],
    ["/a?%zz=1&tokens=2&mytoken=3", "/a?%zz=1&tokens=[redacted]&mytoken=[redacted]"],
    ["no query at all", "no query at all"],
    // A key set's URL with a user name and password in it.
    [
      "http://alice:pa55w0rd@keys.example:8443/jwks.json?token=abc",
      "http://[redacted]@keys.example:8443/jwks.json?token=[redacted]",
    ],
    ["https://user@host/a", "https://[redacted]@host/a"],
    // What other services call theirs, as in a --jwks-url.
    [
      "https://keys.example/jwks.json?api_key=k3y&kid=1&X-Amz-Signature=abc&client_secret=s",
      "https://keys.example/jwks.json?api_key=[redacted]&kid=1&X-Amz-Signature=[redacted]&client_secret=[redacted]",
    ],
    [
      "/jobs?status=running&kind=build&since=3&limit=5",
      "/jobs?status=running&kind=build&since=3&limit=5",
    ],
    ["https://host/a?next=x@y", "https://host/a?next=x@y"],
  ];
  for (const [url, shown] of cases) assert.equal(redactUrl(url), shown, url);
});

Deno.test("log quotes a field holding a control character, so the line stays text", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => void lines.push(line);
  try {
    log("warn", "failed sign-in", { user: "\u0000", other: "a\u001b[31mb", plain: "alice" });
  } finally {
    console.error = original;
  }
  assert.deepEqual(lines, [
    'WARN failed sign-in user="\\u0000" other="a\\u001b[31mb" plain=alice',
  ]);
});
