/**
 * A worker that commits 4 KB events to one job for a while, as an isolate publishing
 * does (for the WAL test in `sqlite_store_test.ts`). Told `{dir, id, limit}` it opens the
 * store and answers `"ready"`; told `{ms}` it commits for that long and answers how many
 * commits it made.
 */
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite_store.ts";
import { StoreBusyError } from "../../src/store/event_store.ts";

let store: SqliteStore | undefined;
let job = "";

self.onmessage = async (
  e: MessageEvent<{ dir: string; id: string; limit: number } | { ms: number }>,
) => {
  if ("dir" in e.data) {
    store = openSqliteStore(e.data.dir, {
      maxEventsPerJob: 1000,
      walLimitBytes: e.data.limit,
      checkpoints: "elsewhere",
    });
    job = e.data.id;
    store.createJob({ id: job, kind: null, owner: null, metadata: {} }, Date.now());
    self.postMessage("ready");
    return;
  }
  const line = "x".repeat(4000);
  let commits = 0;
  const end = Date.now() + e.data.ms;
  while (Date.now() < end) {
    try {
      store!.appendBatch([{ jobId: job, events: [{ type: "log", data: { line } }] }], Date.now());
      commits++;
    } catch (error) {
      if (!(error instanceof StoreBusyError)) throw error;
      // As the committer does: the other holds the lock; try again shortly.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    // Reads between commits, as serving requests does.
    store!.getJob(job);
  }
  store!.close();
  self.postMessage({ commits });
};
