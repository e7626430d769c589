import assert from "node:assert/strict";
import { redactUrl } from "../src/log.ts";

Deno.test("redactUrl hides token, ticket and access_token however their names are written", () => {
  const cases: [string, string][] = [
    ["/ws?token=abc", "/ws?token=[redacted]"],
    ["/ws?jobs=a&TOKEN=abc&x=1", "/ws?jobs=a&TOKEN=[redacted]&x=1"],
    ["/ws?%74oken=abc", "/ws?%74oken=[redacted]"],
    ["/ws?tic%6Bet=abc#frag", "/ws?tic%6Bet=[redacted]#frag"],
    ["/a?access_token=abc&token=def", "/a?access_token=[redacted]&token=[redacted]"],
    ["/a?%zz=1&tokens=2&mytoken=3", "/a?%zz=1&tokens=2&mytoken=3"],
    ["no query at all", "no query at all"],
  ];
  for (const [url, shown] of cases) assert.equal(redactUrl(url), shown, url);
});
