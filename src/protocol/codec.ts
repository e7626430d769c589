/**
 * How each transport frames messages: one codec per (transport, message format). The
 * event encoders are shared by all connections, so each event is framed once per codec.
 *
 * @module
 */
import { flatSnapshot } from "../jobs/job.ts";
import type { Encoder, WireEvent } from "../hub/wire_event.ts";
import { formatSse, formatSseComment } from "./sse.ts";

/** A stream transport. */
export type Transport = "websocket" | "sse" | "ndjson";

/** `envelope`: every event in the envelope; `snapshot`: a flat job snapshot per state change. */
export type MessageFormat = "envelope" | "snapshot";

/** What a sink writes: text for WebSocket, bytes for HTTP streams. */
export type Frame = string | Uint8Array<ArrayBuffer>;

/** A frame's length: UTF-16 code units for text, bytes for bytes. */
export function frameLength(frame: Frame): number {
  return typeof frame === "string" ? frame.length : frame.byteLength;
}

/** Frames events and session messages for one transport and message format. */
export interface Codec {
  readonly transport: Transport;
  readonly format: MessageFormat;
  /** Frames a committed event, or `undefined` when this format does not send it. */
  readonly events: Encoder;
  /**
   * Frames a session message (not persisted) whose JSON text is `json`; on SSE with `id`,
   * the place a browser's `EventSource` resumes from if the stream ends before any event.
   */
  session(type: string, json: string, id?: number): Frame;
  /** Frames a committed event with a connection-specific SSE id (multi-job SSE). */
  withId(event: WireEvent, id: string): Frame | undefined;
  /** A keep-alive that carries no message (SSE comment), if the transport has one. */
  readonly comment: Frame | undefined;
}

const utf8 = new TextEncoder();

function snapshotJson(event: WireEvent): string | undefined {
  if (!event.showsState) return undefined;
  return JSON.stringify(flatSnapshot(event.job!));
}

function sseEvent(event: WireEvent, format: MessageFormat, id: string): string | undefined {
  if (format === "envelope") {
    return formatSse({ id, event: event.type, data: event.envelope });
  }
  const json = snapshotJson(event);
  // Snapshot messages have no event name, so a plain EventSource `onmessage` receives them.
  return json === undefined ? undefined : formatSse({ id, data: json });
}

function makeCodec(transport: Transport, format: MessageFormat, id: number): Codec {
  const events: Encoder = {
    id,
    encode(event) {
      switch (transport) {
        case "websocket":
          return format === "envelope" ? event.envelope : snapshotJson(event);
        case "ndjson": {
          const json = format === "envelope" ? event.envelope : snapshotJson(event);
          return json === undefined ? undefined : utf8.encode(json + "\n");
        }
        case "sse": {
          const text = sseEvent(event, format, String(event.sequence));
          return text === undefined ? undefined : utf8.encode(text);
        }
      }
    },
  };
  return {
    transport,
    format,
    events,
    session(type, json, id) {
      switch (transport) {
        case "websocket":
          return json;
        case "ndjson":
          return utf8.encode(json + "\n");
        case "sse":
          return utf8.encode(
            formatSse({
              ...(id === undefined ? {} : { id }),
              ...(format === "envelope" ? { event: type } : {}),
              data: json,
            }),
          );
      }
    },
    withId(event, sseId) {
      if (transport !== "sse") return events.encode(event);
      const text = sseEvent(event, format, sseId);
      return text === undefined ? undefined : utf8.encode(text);
    },
    comment: transport === "sse" ? utf8.encode(formatSseComment("ping")) : undefined,
  };
}

const CODECS: Record<Transport, Record<MessageFormat, Codec>> = {
  websocket: {
    envelope: makeCodec("websocket", "envelope", 0),
    snapshot: makeCodec("websocket", "snapshot", 1),
  },
  sse: { envelope: makeCodec("sse", "envelope", 2), snapshot: makeCodec("sse", "snapshot", 3) },
  ndjson: {
    envelope: makeCodec("ndjson", "envelope", 4),
    snapshot: makeCodec("ndjson", "snapshot", 5),
  },
};

/** The shared codec of a transport and format. */
export function codecFor(transport: Transport, format: MessageFormat): Codec {
  return CODECS[transport][format];
}
