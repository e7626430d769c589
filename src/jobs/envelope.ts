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
 * The envelope of an event whose data is already JSON text: the same bytes as
 * {@link encodeEnvelope} writes for that data.
 */
export function joinEnvelope(
  type: string,
  jobId: string,
  sequence: number,
  timestamp: string,
  data: string,
): string {
  return `${envelopeHead(type, jobId, sequence, timestamp)}${data}}`;
}

/**
 * Rebuilds the envelopes of one job's stored events, as {@link joinEnvelope} writes them.
 * What consecutive events share (the job, their types, the time of a commit) is quoted
 * once: a replay rebuilds up to thousands at a time.
 */
export function envelopesOf(
  jobId: string,
): (type: string, sequence: number, timestamp: string, data: string) => string {
  const job = `,"job_id":${JSON.stringify(jobId)},"sequence":`;
  const types = new Map<string, string>();
  let time: string | undefined;
  let timeJson = "";
  return (type, sequence, timestamp, data) => {
    let typeJson = types.get(type);
    if (typeJson === undefined) types.set(type, typeJson = `{"type":${JSON.stringify(type)}`);
    if (timestamp !== time) {
      time = timestamp;
      timeJson = `,"timestamp":${JSON.stringify(timestamp)},"data":`;
    }
    return typeJson + job + sequence + timeJson + data + "}";
  };
}
