/**
 * A greeting for transports whose server reply does not start with one (long-poll, and
 * an SSE stream refused with 204 because the job had already ended): the job's
 * snapshot, fetched over HTTP, in the shape of the stream's `connection` message.
 *
 * @module
 */
import { fetchJob, type HttpContext } from "./http.ts";
import type { Envelope } from "./types.ts";

/** Fetches the job and frames it as `connection` (first job) or `subscribed`. */
export async function fetchGreeting(
  http: HttpContext,
  jobId: string,
  first: boolean,
  signal?: AbortSignal,
): Promise<Envelope> {
  const job = await fetchJob(http, jobId, signal);
  return {
    type: first ? "connection" : "subscribed",
    job_id: jobId,
    sequence: null,
    timestamp: new Date().toISOString(),
    data: { last_sequence: job.last_sequence, job },
  };
}
