/**
 * The credentials of one stream connection: the bearer token where it must travel in
 * the URL (WebSocket: browsers cannot set headers there), and a fresh single-use ticket
 * when the caller gives a ticket provider. HTTP transports send the token as
 * `Authorization` instead (see `http.ts`), keeping it out of URLs and logs.
 *
 * @module
 */
import { JobwireError } from "./errors.ts";
import { resolveToken } from "./http.ts";
import { type StreamTarget, targetJobIds } from "./transport.ts";
import type { TransportName } from "./types.ts";
import type { ResolvedWatchOptions } from "./watch_options.ts";

/** What goes in a stream URL. */
export interface StreamCredentials {
  token: string | undefined;
  ticket: string | undefined;
}

/**
 * Resolves the credentials of a connection over `transport`.
 *
 * @throws {JobwireError} `connect_failed` when the token function or the ticket provider fails
 */
export async function streamCredentials(
  transport: TransportName,
  target: StreamTarget,
  options: ResolvedWatchOptions,
): Promise<StreamCredentials> {
  try {
    const token = transport === "websocket" ? await resolveToken(options.token) : undefined;
    let ticket: string | undefined;
    // Long-poll makes many requests; a single-use ticket cannot cover them.
    if (transport !== "poll" && options.getTicket !== undefined) {
      // Only single-job streams take a ticket (watchJobs refuses getTicket otherwise).
      ticket = await options.getTicket(targetJobIds(target)[0] ?? "");
    }
    return { token, ticket };
  } catch (cause) {
    throw new JobwireError("connect_failed", `Cannot get credentials: ${cause}`, { cause });
  }
}
