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

/**
 * Envelopes of one job's events whose data is already JSON text: the same bytes as
 * {@link encodeEnvelope} writes for that data. What consecutive events share (the job,
 * a type, the time of a commit) is quoted once: a commit builds every event's
 * envelope this way, and a replay from the store up to thousands at a time.
 */
export function envelopesOf(
  jobId: string,
): (type: string, sequence: number, timestamp: string, data: string) => string {
  const job = `,"job_id":${JSON.stringify(jobId)},"sequence":`;
  let kind: string | undefined;
  let typeJson = "";
  let time: string | undefined;
  let timeJson = "";
  return (type, sequence, timestamp, data) => {
    if (type !== kind) {
      kind = type;
      typeJson = `{"type":${JSON.stringify(type)}`;
    }
    if (timestamp !== time) {
      time = timestamp;
      timeJson = `,"timestamp":${JSON.stringify(timestamp)},"data":`;
    }
    return typeJson + job + sequence + timeJson + data + "}";
  };
}
