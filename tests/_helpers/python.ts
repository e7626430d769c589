/** Finding `python3`, for the tests that need it (the CI installs it). */

/** The command that runs Python 3 here, or undefined when there is none. */
export function findPython(): string | undefined {
  for (const name of ["python3", "/usr/bin/python3"]) {
    try {
      const out = new Deno.Command(name, { args: ["--version"], stdout: "piped", stderr: "piped" })
        .outputSync();
      if (out.success) return name;
    } catch {
      // Not this one.
    }
  }
  return undefined;
}
