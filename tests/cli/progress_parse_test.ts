import assert from "node:assert/strict";
import { type ParsedProgress, parseEtaText, parseProgress } from "../../src/cli/progress_parse.ts";

/** Real output lines of common tools and what they mean. */
const READS: [string, ParsedProgress][] = [
  ["45%", { progress: 45 }],
  ["45.5 %", { progress: 45.5 }],
  ["Progress: 100%", { progress: 100, stage: "Progress" }],
  ["0%", { progress: 0 }],
  ["12/200", { progress: 6, current: 12, total: 200 }],
  ["done 12/200.", { progress: 6, current: 12, total: 200 }],
  // tqdm
  [
    " 45%|████▌     | 45/100 [00:01<00:01, 50.00it/s]",
    { progress: 45, current: 45, total: 100, eta_seconds: 1 },
  ],
  [
    "Epoch 1:  45%|████▌     | 45/100 [00:01<00:01, 50.00it/s, loss=0.3]",
    { progress: 45, current: 45, total: 100, stage: "Epoch 1", eta_seconds: 1 },
  ],
  [
    "100%|██████████| 4.50M/4.50M [00:02<00:00, 2.10MB/s]",
    { progress: 100, eta_seconds: 0 },
  ],
  [
    " 12%|█▏        | 1200/10000 [01:02:03<1:05:00, 3.1it/s]",
    { progress: 12, current: 1200, total: 10000, eta_seconds: 3900 },
  ],
  // pip / rich
  ["   ━━━━━━━━━━━━━━━━ 12.3/45.6 MB 1.2 MB/s eta 0:00:03", { progress: 26.97, eta_seconds: 3 }],
  ["   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 1.2/1.2 kB ? eta -:--:--", { progress: 100 }],
  // git
  [
    "Receiving objects:  45% (450/1000), 1.20 MiB | 1.00 MiB/s",
    { progress: 45, current: 450, total: 1000, stage: "Receiving objects" },
  ],
  [
    "Resolving deltas: 100% (20/20), done.",
    { progress: 100, current: 20, total: 20, stage: "Resolving deltas" },
  ],
  // wget, curl-like
  [
    "file.iso            45%[=======>         ] 450.00M  10.2MB/s    eta 30s",
    { progress: 45, eta_seconds: 30 },
  ],
  ["ubuntu.iso   12%[>      ]  1.2G  5.3MB/s  eta 1m 30s", { progress: 12, eta_seconds: 90 }],
  // Keras
  [
    "12/200 [>.............................] - ETA: 3s - loss: 0.2",
    { progress: 6, current: 12, total: 200, eta_seconds: 3 },
  ],
  [
    "150/200 [=====================>........] - ETA: 0:01:02 - loss: 0.1",
    { progress: 75, current: 150, total: 200, eta_seconds: 62 },
  ],
  // rsync, docker, cargo, generic counters
  ["  1,234,567  45%    1.23MB/s    0:00:03", { progress: 45 }],
  ["abc123: Downloading [=====>     ]  12.5MB/45.6MB", { progress: 27.41 }],
  ["Downloading 512kB/1.2MB", { progress: 42.67 }],
  ["Copying 1.5GiB/3GiB", { progress: 50 }],
  ["[3/10] Compiling foo v0.1.0", { progress: 30, current: 3, total: 10 }],
  ["    Building [=======>   ] 45/120: serde", { progress: 37.5, current: 45, total: 120 }],
  ["Step 12/200 : RUN apt-get update", { progress: 6, current: 12, total: 200 }],
  // a percentage and a count that disagree: the percentage wins, the count is left out
  ["Epoch 3/10 - 45% of batches", { progress: 45 }],
];

for (const [line, expected] of READS) {
  Deno.test(`parseProgress reads ${JSON.stringify(line)}`, () => {
    assert.deepEqual(parseProgress(line), expected);
  });
}

/** Lines that look numeric but are not progress. */
const IGNORES = [
  "",
  "compiled 120 files",
  "2024/01/02 10:00:00 server started", // Go's log format
  "10/20/2024",
  "released 01/02",
  "v1.2/3",
  "section 2.1/4",
  "3.5/5 stars",
  "HTTP/1.1 200 OK",
  "GET /api/v1/users/12/200 200",
  "see https://example.com/a/1/2",
  "listening on 10.0.0.0/24",
  "http://localhost:8080/12",
  "12:30:45",
  "12/30:00",
  "CPU 150%",
  "growth -5%",
  "+5%",
  "printf('%d%%')",
  "a%20b",
  "ratio 5/3",
  "0/0",
  "1,045%",
  "12/200px",
  "build x45%",
  "12.5/3.4 MB", // more done than in all
];

for (const line of IGNORES) {
  Deno.test(`parseProgress ignores ${JSON.stringify(line)}`, () => {
    assert.equal(parseProgress(line), undefined);
  });
}

Deno.test("parseProgress rounds to two decimals and never leaves 0-100", () => {
  assert.deepEqual(parseProgress("1/3"), { progress: 33.33, current: 1, total: 3 });
  assert.deepEqual(parseProgress("2/3"), { progress: 66.67, current: 2, total: 3 });
  assert.deepEqual(parseProgress("99.999%"), { progress: 100 });
});

Deno.test("parseEtaText reads clocks and unit durations", () => {
  assert.equal(parseEtaText("0:00:03"), 3);
  assert.equal(parseEtaText("02:03"), 123);
  assert.equal(parseEtaText("1:02:03"), 3723);
  assert.equal(parseEtaText("1m 30s"), 90);
  assert.equal(parseEtaText("2h5m"), 7500);
  assert.equal(parseEtaText("1d"), 86400);
  assert.equal(parseEtaText("3.6s"), 4);
  assert.equal(parseEtaText(""), undefined);
  assert.equal(parseEtaText("soon"), undefined);
});
