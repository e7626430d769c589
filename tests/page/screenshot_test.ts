/**
 * The README's screenshots stay reproducible: `deno task screenshot` (scripts/screenshot.ts)
 * runs against a demo server and writes both PNGs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { browserTest } from "../_helpers/browser.ts";
import { takeScreenshots } from "../../scripts/screenshot.ts";

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

browserTest("the screenshot script renders the list and a job of a demo server", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobwire-screenshots-" });
  try {
    const written = await takeScreenshots(dir);
    assert.deepEqual(written, [join(dir, "status-page.png"), join(dir, "status-page-job.png")]);
    for (const path of written) {
      const bytes = await Deno.readFile(path);
      assert.deepEqual([...bytes.slice(0, 8)], PNG, `${path} is a PNG`);
      assert.ok(bytes.length > 20_000, `${path} has content (${bytes.length} bytes)`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
