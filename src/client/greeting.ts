/**
 * A greeting for transports whose server reply does not start with one (long-poll, and
 * an SSE stream refused with 204 because the job had already ended): the job's
 * snapshot, fetched over HTTP, in the shape of the stream's `connection` message.
 *
 * @module
 */
import { fetchJob, type HttpContext } from "./http.ts";
import type { Envelope } from "./types.ts";

/**
 * Fetches the job and frames it as `connection` (first job) or `subscribed`. A `since`
 * past the job's end is answered as a stream would: a truncated replay of nothing, from
 * which the watcher goes on from where the job is.
 */
export async function fetchGreeting(
  http: HttpContext,
  jobId: string,
  first: boolean,
  signal?: AbortSignal,
  since?: number,
): Promise<Envelope> {
  const job = await fetchJob(http, jobId, signal);
  const ahead = since !== undefined && since > job.last_sequence;
  return {
    type: first ? "connection" : "subscribed",
    job_id: jobId,
    sequence: null,
    timestamp: new Date().toISOString(),
    data: {
      last_sequence: job.last_sequence,
      job,
      ...(ahead
        ? {
          replay: {
            since,
            count: 0,
            from: null,
            to: null,
            truncated: true,
            first_available: job.first_sequence ?? 1,
          },
        }
        : {}),
    },
  };
}
