import { openSqliteStore } from "../src/store/sqlite_store.ts";
const dir = await Deno.makeTempDir();
const store = openSqliteStore(dir, { maxEventsPerJob: 10000 });
for (let j = 0; j < 32; j++) {
  store.createJob({ id: `j${j}`, kind: null, owner: null, metadata: {} }, Date.now());
}
const ev = { type: "bench", data: { n: 1 } };
for (const group of [100]) {
  const t = performance.now();
  let n = 0;
  while (performance.now() - t < 2000) {
    const reqs = Array.from(
      { length: group },
      (_, i) => ({ jobId: `j${(n + i) % 32}`, events: [ev] }),
    );
    store.appendBatch(reqs, Date.now());
    n += group;
    if (n % 2000 < group) await new Promise((r) => setTimeout(r, 0));
  }
  console.log(`group ${group}: ${((performance.now() - t) * 1000 / n).toFixed(1)} µs/append`);
}
store.close();
