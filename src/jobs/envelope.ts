/**
 * The one message shape of every transport (DESIGN §2, event envelope).
 *
 * @module
 */

/** A persisted event: its place in the job's stream and its envelope, serialized once. */
export interface StoredEvent {
  job_id: string;
  sequence: number;
  type: string;
  /** The whole envelope as JSON text, exactly as every transport sends it. */
  envelope: string;
}

/**
 * Serializes an envelope. Session messages (not persisted) pass `sequence: null`.
 *
 * @param timestamp ISO 8601 time the event was committed or the message was made
 */
export function encodeEnvelope(
  type: string,
  jobId: string | null,
  sequence: number | null,
  timestamp: string,
  data: unknown,
): string {
  return JSON.stringify({ type, job_id: jobId, sequence, timestamp, data });
}

/** An envelope's text up to its data, exactly as `encodeEnvelope` writes it. */
function envelopeHead(type: string, jobId: string, sequence: number, timestamp: string): string {
  return `{"type":${JSON.stringify(type)},"job_id":${
    JSON.stringify(jobId)
  },"sequence":${sequence},"timestamp":${JSON.stringify(timestamp)},"data":`;
}

/**
 * The `data` of a persisted event as JSON text, cut from its envelope: with the event's
 * type, job, sequence and time, {@link joinEnvelope} gives back the same envelope, byte
 * for byte. `undefined` when the envelope does not start as those make it (no data).
 */
export function envelopeData(event: StoredEvent, timestamp: string): string | undefined {
  const head = envelopeHead(event.type, event.job_id, event.sequence, timestamp);
  const { envelope } = event;
  if (!envelope.startsWith(head) || !envelope.endsWith("}")) return undefined;
  return envelope.slice(head.length, -1);
}

/** The envelope whose data {@link envelopeData} cut out. */
export function joinEnvelope(
  type: string,
  jobId: string,
  sequence: number,
  timestamp: string,
  data: string,
): string {
  return `${envelopeHead(type, jobId, sequence, timestamp)}${data}}`;
}
