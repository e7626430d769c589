/**
 * Reading request bodies: a size cap enforced while reading (not only from
 * Content-Length), a media-type check, strict UTF-8 and JSON parsing into the catalogue's
 * errors.
 *
 * @module
 */
import { ApiError } from "./errors.ts";
import { jsonProblem } from "../jobs/input.ts";

/**
 * Media types accepted as JSON. Besides JSON itself, `text/plain` and curl's default
 * `application/x-www-form-urlencoded` are read as JSON, so `curl -d '{…}'` works without a
 * header; anything else is refused with 415.
 */
const JSON_LIKE =
  /^(application\/(json|[\w.+-]+\+json|x-www-form-urlencoded|x-ndjson)|text\/plain)$/i;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A body that could not be read to its end: the client went away or sent a broken chunked
 * body, or the server is stopping (which the error handler then answers with a 503).
 */
export class IncompleteBodyError extends ApiError {
  constructor() {
    super("malformed_json", "The request body could not be read completely");
  }
}

/**
 * Reads the body as JSON.
 *
 * @returns the parsed value, or `undefined` for an empty body
 * @throws {ApiError} 413 past `maxBytes`, 415 for a non-JSON media type, a charset other
 *   than UTF-8 or a Content-Encoding (compressed bodies are not read), 400 for bytes
 *   that are not UTF-8 JSON, 422 for JSON nested too deeply or with a number out of range
 */
export async function readJson(request: Request, maxBytes: number): Promise<unknown> {
  const type = request.headers.get("content-type");
  if (type !== null) {
    const [first, ...parameters] = type.split(";");
    const essence = first!.trim();
    if (essence !== "" && !JSON_LIKE.test(essence)) {
      throw new ApiError(
        "unsupported_media_type",
        `Unsupported Content-Type ${essence}: send application/json`,
      );
    }
    const charset = parameters.map((p) => /^\s*charset\s*=\s*"?([^"\s]*)"?\s*$/i.exec(p)?.[1])
      .find((c) => c !== undefined);
    if (charset !== undefined && !/^(utf-?8|us-ascii)$/i.test(charset)) {
      throw new ApiError(
        "unsupported_media_type",
        `Unsupported charset ${charset}: send the body in UTF-8`,
      );
    }
  }
  // The body is read as it came: a compressed one would be taken for malformed JSON, or
  // (labelled but not compressed) stored as if it were.
  const encoding = (request.headers.get("content-encoding") ?? "").trim();
  if (encoding !== "" && !/^identity$/i.test(encoding)) {
    throw new ApiError(
      "unsupported_media_type",
      `Unsupported Content-Encoding ${encoding}: send the body uncompressed`,
    );
  }
  // The runtime takes the body as chunked whatever other coding is listed before that
  // (`gzip, chunked`): the bytes would be read as if the coding were not there.
  const transfer = request.headers.get("transfer-encoding");
  if (transfer !== null && !/^\s*chunked\s*$/i.test(transfer)) {
    throw new ApiError(
      "unsupported_transfer_encoding",
      `Unsupported Transfer-Encoding ${transfer.trim()}: send the body chunked or with a length`,
    );
  }
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    throw new ApiError(
      "payload_too_large",
      `The body is ${declared} bytes; the limit is ${maxBytes}`,
    );
  }
  // `request.body` is not touched on this path: reading that getter turns the body into
  // a stream and loses the runtime's one-shot read of a complete body.
  if (declared >= 0 && declared <= maxBytes) {
    // A declared length within the cap: one read, and the cap holds (the server refuses a
    // body longer than its Content-Length).
    let buffer: ArrayBuffer;
    try {
      buffer = await request.arrayBuffer();
    } catch {
      throw new IncompleteBodyError();
    }
    if (buffer.byteLength > maxBytes) {
      throw new ApiError("payload_too_large", `The body is over the limit of ${maxBytes} bytes`);
    }
    return parseBytes(new Uint8Array(buffer));
  }
  if (request.body === null) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        throw new ApiError("payload_too_large", `The body is over the limit of ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    // The client went away or sent a broken chunked body.
    throw new IncompleteBodyError();
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return parseBytes(bytes);
}

function parseBytes(bytes: Uint8Array): unknown {
  if (bytes.byteLength === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ApiError("malformed_json", "The request body is not valid UTF-8");
  }
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ApiError(
      "malformed_json",
      `The request body is not valid JSON: ${(error as Error).message}`,
    );
  }
  const problem = jsonProblem(value);
  if (problem !== undefined) {
    throw new ApiError(
      "validation_error",
      `The request body is invalid: ${
        problem.path === "" ? "" : `${problem.path}: `
      }${problem.message}`,
      [problem],
    );
  }
  return value;
}
