/**
 * A lean HTTP/1.1 keep-alive client for the benchmark's publish throughput when `wrk` is
 * not installed. `fetch` spends several times the server's CPU per small request, and on
 * two cores that CPU is taken from the server under test: requests made here are prebuilt
 * bytes written on a `Deno.Conn`, and a response is read only as far as its status line,
 * its length and its end.
 *
 * @module
 */

const CR = 13;
const LF = 10;
const latin1 = new TextDecoder("latin1");

/** One keep-alive connection with at most one request in flight, like each of wrk's. */
export class Http1Connection {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(64 * 1024);
  /** Bytes in `#buffer` not yet consumed, from `#start` to `#end`. */
  #start = 0;
  #end = 0;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(url: string): Promise<Http1Connection> {
    const { hostname, port } = new URL(url);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    conn.setNoDelay(true);
    return new Http1Connection(conn);
  }

  /**
   * Sends one whole request (as {@link requestBytes} builds it) and reads its response.
   *
   * @returns the response's status code
   * @throws when the server closes the connection or answers something unreadable
   */
  async send(request: Uint8Array): Promise<number> {
    let written = 0;
    while (written < request.byteLength) {
      written += await this.#conn.write(request.subarray(written));
    }
    const headEnd = await this.#find(headerEnd);
    const head = latin1.decode(this.#buffer.subarray(this.#start, headEnd));
    this.#start = headEnd + 4;
    const status = Number(head.slice(9, 12));
    if (!head.startsWith("HTTP/1.1 ") || !Number.isInteger(status)) {
      throw new Error(`not an HTTP/1.1 response: ${head.slice(0, 80)}`);
    }
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length !== null) {
      await this.#skip(Number(length[1]));
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      await this.#skipChunks();
    }
    return status;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed by the server.
    }
  }

  /** Reads until `locate` finds its position in the unread bytes; returns that position. */
  async #find(locate: (bytes: Uint8Array, from: number, to: number) => number): Promise<number> {
    for (;;) {
      const at = locate(this.#buffer, this.#start, this.#end);
      if (at !== -1) return at;
      await this.#fill();
    }
  }

  /** Reads more bytes, moving the unread ones to the front first. */
  async #fill(): Promise<void> {
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.byteLength) {
      const larger = new Uint8Array(this.#buffer.byteLength * 2);
      larger.set(this.#buffer);
      this.#buffer = larger;
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) throw new Error("the server closed the connection");
    this.#end += n;
  }

  async #skip(count: number): Promise<void> {
    while (this.#end - this.#start < count) {
      count -= this.#end - this.#start;
      this.#start = this.#end;
      await this.#fill();
    }
    this.#start += count;
  }

  async #skipChunks(): Promise<void> {
    for (;;) {
      const lineEnd = await this.#find(crlf);
      const size = parseInt(latin1.decode(this.#buffer.subarray(this.#start, lineEnd)), 16);
      this.#start = lineEnd + 2;
      if (!Number.isFinite(size)) throw new Error("bad chunk size");
      await this.#skip(size + 2);
      if (size === 0) return;
    }
  }
}

/** Position of the first CRLF CRLF in `bytes[from, to)`, or -1. */
function headerEnd(bytes: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (bytes[i] === CR && bytes[i + 1] === LF && bytes[i + 2] === CR && bytes[i + 3] === LF) {
      return i;
    }
  }
  return -1;
}

/** Position of the first CRLF in `bytes[from, to)`, or -1. */
function crlf(bytes: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 1 < to; i++) {
    if (bytes[i] === CR && bytes[i + 1] === LF) return i;
  }
  return -1;
}

/** The bytes of a whole request with a JSON body, for {@link Http1Connection.send}. */
export function requestBytes(
  method: string,
  url: string,
  body: string,
  headers: Record<string, string>,
): Uint8Array {
  const { host, pathname, search } = new URL(url);
  const payload = new TextEncoder().encode(body);
  const lines = [`${method} ${pathname}${search} HTTP/1.1`, `host: ${host}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push(`content-length: ${payload.byteLength}`, "", "");
  const head = new TextEncoder().encode(lines.join("\r\n"));
  const request = new Uint8Array(head.byteLength + payload.byteLength);
  request.set(head);
  request.set(payload, head.byteLength);
  return request;
}

/** Whether `wrk` is installed: an efficient load generator for plain HTTP. */
export function haveWrk(): boolean {
  try {
    return new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().code <= 1;
  } catch {
    return false;
  }
}
