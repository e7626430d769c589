/** The client library's words for network failures, from the runtime's errors. */
import assert from "node:assert/strict";
import { networkReason, unreachable } from "../../src/client/errors.ts";
import { watchJob } from "../../src/client/mod.ts";
import { closedPort } from "../_helpers/cli.ts";
import { Recorder } from "../_helpers/watch.ts";

Deno.test("networkReason keeps the cause and drops the runtime's framing, in either of its forms", () => {
  const wrapped = (message: string) => new TypeError("fetch failed", { cause: new Error(message) });
  for (
    const message of [
      "error sending request for url (http://127.0.0.1:9/x): client error (Connect): tcp connect error: Connection refused (os error 111)",
      "error sending request from 127.0.0.1:53012 for URL (http://127.0.0.1:9/x): client error (Connect): tcp connect error: Connection refused (os error 111)",
    ]
  ) {
    assert.equal(
      networkReason(wrapped(message)),
      "tcp connect error: Connection refused (os error 111)",
    );
  }
  assert.equal(
    unreachable("http://u:p@127.0.0.1:9/base", wrapped("error sending request for url (x): boom"))
      .message,
    "Cannot reach http://127.0.0.1:9: boom",
  );
});

Deno.test("an SSE watcher of a server that refuses connections says why, as the others do", async () => {
  const port = closedPort();
  const watcher = watchJob(`http://127.0.0.1:${port}`, "j", {
    transports: ["sse"],
    maxAttempts: 1,
  });
  const rec = new Recorder(watcher);
  try {
    const error = await rec.next("error");
    assert.match(error.message, new RegExp(`^Cannot reach http://127.0.0.1:${port}: .*refused`));
  } finally {
    watcher.close();
  }
});
