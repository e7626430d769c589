import assert from "node:assert/strict";
import { runCli } from "../_helpers/cli.ts";

for (const command of ["run", "watch", "wait", "demo"]) {
  Deno.test(`main.ts ${command} --help prints its usage and exits 0`, async () => {
    const out = await runCli([command, "--help"]);
    assert.equal(out.code, 0);
    assert.match(out.stdout, new RegExp(`^Usage: main\\.ts ${command} `));
    assert.match(out.stdout, /JOBWIRE_SERVER/);
  });

  Deno.test(`main.ts ${command} refuses an unknown option with exit 2`, async () => {
    const out = await runCli([command, "--bogus", "x"]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /Unknown option --bogus/);
  });
}

for (
  const args of [["--no-auht"], ["token", "--sub", "a", "--scope", "read", "--bogus"], [
    "user",
    "list",
    "--bogus",
  ]]
) {
  Deno.test(`main.ts ${args.join(" ")}: a mistyped last flag is named as unknown`, async () => {
    const out = await runCli(args);
    assert.equal(out.code, 2);
    assert.match(out.stderr, new RegExp(`Unknown option ${args.at(-1)}[:( ]`));
    // A near miss names what was likely meant.
    if (args[0] === "--no-auht") assert.match(out.stderr, /did you mean --no-auth\?/);
    else assert.doesNotMatch(out.stderr, /did you mean/);
  });
}

for (const [typed, meant] of [["runn", "run"], ["wach", "watch"], ["tokn", "token"]]) {
  Deno.test(`main.ts ${typed}: an unknown command names the one likely meant, in one line`, async () => {
    const out = await runCli([typed!]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, new RegExp(`unknown command "${typed}": did you mean ${meant}\\?`));
    assert.equal(out.stderr.trim().split("\n").length, 1, out.stderr);
  });
}

for (const [option, meant] of [["--timout", "--timeout"], ["--serer", "--server"]]) {
  Deno.test(`main.ts wait j ${option} 1: a mistyped option of a terminal tool names the one likely meant`, async () => {
    const out = await runCli(["wait", "j", option!, "1"]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, new RegExp(`Unknown option ${option}: did you mean ${meant}\\?`));
  });
}

Deno.test("main.ts --port with nothing after it needs a value", async () => {
  const out = await runCli(["--port"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /Option --port needs a value/);
});

Deno.test("main.ts --help lists the terminal tools", async () => {
  const out = await runCli(["--help"]);
  assert.equal(out.code, 0);
  for (const command of ["run", "watch", "wait", "demo"]) {
    assert.match(out.stdout, new RegExp(`main\\.ts ${command} `));
  }
});

Deno.test("deno.json has a task for each terminal tool, and deno task run passes -- through", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const tasks = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks;
  for (const command of ["run", "watch", "wait", "demo"]) {
    assert.match(tasks[command], new RegExp(`main\\.ts ${command}$`));
  }
  const task = await new Deno.Command(Deno.execPath(), {
    args: ["task", "run", "--server", "http://127.0.0.1:9", "--", "sh", "-c", 'echo "a b"; exit 3'],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(task.code, 3);
  assert.equal(new TextDecoder().decode(task.stdout), "a b\n");
});

Deno.test("deno task run runs the command in the directory it was typed in, not the project's", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const here = await Deno.realPath(await Deno.makeTempDir({ prefix: "jobwire-task-cwd-" }));
  try {
    await Deno.writeTextFile(`${here}/step.sh`, 'echo "in $(pwd) [$JOBWIRE_TASK_CWD]"\n');
    const task = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--config",
        `${root}deno.json`,
        "run",
        "--server",
        "http://127.0.0.1:9",
        "--",
        "sh",
        "./step.sh",
      ],
      cwd: here,
      stdout: "piped",
      stderr: "piped",
      // As typed in a shell: `deno task test` (CI) sets INIT_CWD, which a task keeps.
      clearEnv: true,
      env: {
        ...Object.fromEntries(
          Object.entries(Deno.env.toObject()).filter(([name]) => name !== "INIT_CWD"),
        ),
        NO_COLOR: "1",
      },
    }).output();
    const stderr = new TextDecoder().decode(task.stderr);
    assert.equal(task.code, 0, stderr);
    // The script is found where the user is, runs there, and is not told the variable.
    assert.equal(new TextDecoder().decode(task.stdout), `in ${here} []\n`);
  } finally {
    await Deno.remove(here, { recursive: true });
  }
});

Deno.test("user and token refuse a --data-dir of :memory:, which would keep nothing", async () => {
  const user = await runCli(["user", "add", "zed", "--data-dir", ":memory:"], {
    JOBWIRE_PASSWORD: "secret123",
  });
  assert.equal(user.code, 2, user.stderr);
  assert.match(user.stderr, /:memory: keeps no users/);
  assert.doesNotMatch(user.stdout, /Added/);
  const token = await runCli(["token", "--sub", "a", "--scope", "read", "--data-dir", ":memory:"]);
  assert.equal(token.code, 2, token.stderr);
  assert.match(token.stderr, /keeps no secret/);
  assert.equal(token.stdout, "");
  // With the server's secret given, a token can be signed anywhere.
  const signed = await runCli([
    "token",
    "--sub",
    "a",
    "--scope",
    "read",
    "--data-dir",
    ":memory:",
    "--jwt-secret",
    "a-secret-of-at-least-32-characters-long",
  ]);
  assert.equal(signed.code, 0, signed.stderr);
  assert.match(signed.stdout, /^ey/);
});
