/**
 * The long-poll transport, for when neither WebSocket nor streaming responses get
 * through: per job, the snapshot (`GET /jobs/:id`) as the greeting, then
 * `GET /jobs/:id/events?since=N&wait=S` in a loop. An empty answer becomes a heartbeat
 * carrying the job's high-water mark, so the watcher's gap check and idle timer work
 * here as on the streaming transports. Not available for `all` watchers.
 *
 * @module
 */
import { sleep } from "./backoff.ts";
import { isAbort, JobwireError } from "./errors.ts";
import { fetchGreeting } from "./greeting.ts";
import { fetchEventsPage } from "./http.ts";
import {
  type CloseInfo,
  type Connection,
  type ConnectionHandlers,
  type ConnectOptions,
  followedJobIds,
} from "./transport.ts";
import { isTerminalStatus } from "./types.ts";

/** Opens a long-poll connection. */
export function openPoll(options: ConnectOptions, handlers: ConnectionHandlers): Connection {
  const abort = new AbortController();
  let done = false;
  let opened = false;
  const finish = (info: CloseInfo) => {
    if (done) return;
    done = true;
    abort.abort();
    handlers.close(info);
  };
  const jobIds = followedJobIds(options);
  /** Loops still following their job: one of several whose job goes away ends alone. */
  let following = jobIds.length;
  if (jobIds.length === 0) {
    setTimeout(() =>
      finish({
        opened: false,
        code: null,
        reason: "long-poll cannot follow every job",
        unsupported: true,
      }), 0);
  } else {
    const loops = jobIds.map(async (jobId, i) => {
      let greeted = false;
      try {
        const greeting = await fetchGreeting(
          options.http,
          jobId,
          i === 0,
          abort.signal,
          options.cursors.get(jobId),
        );
        if (done) return;
        if (!opened) {
          opened = true;
          handlers.open();
        }
        handlers.message(greeting);
        greeted = true;
        await follow(options, handlers, jobId, abort.signal, () => done);
      } catch (error) {
        const gone = error instanceof JobwireError &&
          (error.status === 404 || error.status === 410);
        // A job of several followed until then that goes is told as a deletion, as a stream
        // tells it, even the last one (the watcher then has nothing left and finishes); a job that was
        // never there is an error, which ends the watch only when no other is left.
        // A one-job watcher ends on its job's deletion as a one-job stream does (an error,
        // 4004 there): told as a deletion, it would wait on for a job made again under the
        // id, whose events it no longer takes.
        if (!gone || done || (!greeted && following <= 1) || options.target.kind === "job") {
          throw error;
        }
        following--;
        handlers.message({
          type: greeted ? "deleted" : "error",
          job_id: jobId,
          sequence: null,
          timestamp: new Date().toISOString(),
          data: greeted
            ? { reason: error.message }
            : { error: error.message, error_type: "not_found", code: error.code },
        });
      }
    });
    Promise.all(loops).then(
      () => finish({ opened: true, code: 1000, reason: "closed" }),
      (error) => {
        if (done || isAbort(error)) return;
        finish({
          opened,
          code: null,
          reason: "request failed",
          error: error instanceof JobwireError
            ? error
            : new JobwireError("network_error", String(error), { cause: error }),
        });
      },
    );
  }
  return {
    transport: "poll",
    send: () => false,
    close() {
      done = true;
      abort.abort();
    },
  };
}

async function follow(
  options: ConnectOptions,
  handlers: ConnectionHandlers,
  jobId: string,
  signal: AbortSignal,
  closed: () => boolean,
): Promise<void> {
  let since = options.cursors.get(jobId) ?? 0;
  let more = false;
  while (!closed()) {
    const page = await fetchEventsPage(
      options.http,
      jobId,
      { since, ...(more ? {} : { wait: options.pollWaitSeconds }) },
      signal,
    );
    if (closed()) return;
    for (const event of page.events) {
      handlers.message(event);
      since = event.sequence;
    }
    more = page.has_more;
    if (page.events.length === 0) {
      handlers.message({
        type: "heartbeat",
        job_id: jobId,
        sequence: null,
        timestamp: new Date().toISOString(),
        data: { last_sequence: page.last_sequence },
      });
      // A cursor past the job's end (a job made again under its id, a since too far) goes
      // back to where the job is, as the greeting's truncated replay tells the sequencer.
      if (since > page.last_sequence) since = page.last_sequence;
      // For a finished job the server answers at once.
      else if (isTerminalStatus(page.status)) await sleep(options.pollWaitSeconds * 1000, signal);
    }
  }
}
