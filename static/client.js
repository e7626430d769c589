// src/client/errors.ts
var JobwireError = class extends Error {
  name = "JobwireError";
  /** The server's stable error code, or a {@link ClientErrorCode}. */
  code;
  /** HTTP status of the refusal, or `null` when no response came. */
  status;
  /** The server's `details` (failing fields of a validation error, for instance). */
  details;
  constructor(code, message, options = {}) {
    super(message, options.cause === void 0 ? void 0 : {
      cause: options.cause
    });
    this.code = code;
    this.status = options.status ?? null;
    this.details = options.details;
  }
  /** Whether retrying the same request later may succeed (network, 429 and 5xx). */
  get retryable() {
    return this.status === null || this.status === 429 || this.status >= 500;
  }
};
async function errorFromResponse(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
  }
  try {
    const body = JSON.parse(text);
    const error = body.error;
    if (error !== void 0 && typeof error.code === "string") {
      return new JobwireError(error.code, typeof error.message === "string" ? error.message : `HTTP ${response.status}`, {
        status: response.status,
        details: error.details
      });
    }
  } catch {
  }
  return new JobwireError(`http_${response.status}`, `The server answered ${response.status}${text === "" ? "" : `: ${text.slice(0, 200)}`}`, {
    status: response.status
  });
}
function isAbort(error) {
  return error instanceof Error && error.name === "AbortError" || typeof DOMException !== "undefined" && error instanceof DOMException && error.name === "AbortError";
}
var STREAM_ERROR_STATUS = {
  job_gone: 410,
  job_not_found: 404,
  forbidden: 403,
  unauthorized: 401,
  invalid_token: 401,
  token_expired: 401
};
function asJobwireError(error, code) {
  return error instanceof JobwireError ? error : new JobwireError(code, String(error), {
    cause: error
  });
}
function unreachable(baseUrl, error) {
  let server = baseUrl;
  try {
    server = new URL(baseUrl).origin;
  } catch {
  }
  return new JobwireError("network_error", `Cannot reach ${server}: ${networkReason(error)}`, {
    cause: error
  });
}
function networkReason(error) {
  let inner = error;
  for (let depth = 0; depth < 5 && inner instanceof Error && inner.cause !== void 0; depth++) {
    inner = inner.cause;
  }
  const message = inner instanceof Error ? inner.message : String(inner);
  return message.replace(/^error sending request (?:from \S+ )?for url \([^)]*\): /i, "").replace(/^client error \(\w+\): /, "") || "no response";
}

// src/client/http.ts
function joinUrl(base, path, query = {}) {
  const url = new URL(base.replace(/\/+$/, "") + path);
  for (const [key, value] of Object.entries(query)) {
    if (value !== void 0) url.searchParams.set(key, String(value));
  }
  return url.toString();
}
function checkBaseUrl(baseUrl) {
  const protocol = URL.canParse(baseUrl) ? new URL(baseUrl).protocol : void 0;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new TypeError(`The server's URL must be an absolute http(s) URL, such as http://localhost:8080, not ${JSON.stringify(String(baseUrl)).slice(0, 200)}`);
  }
}
function jobIdOf(jobId, where) {
  if (typeof jobId === "number" && Number.isSafeInteger(jobId) && jobId >= 0) {
    return String(jobId);
  }
  if (typeof jobId !== "string" || jobId === "") {
    throw new TypeError(`${where} needs a job id: text such as "build-42" (or a whole number), not ${typeof jobId === "string" ? '""' : String(JSON.stringify(jobId) ?? jobId).slice(0, 80)}`);
  }
  return jobId;
}
function toWebSocketUrl(url) {
  return url.replace(/^http(s?):/i, "ws$1:");
}
async function resolveToken(source) {
  if (source === void 0) return void 0;
  return typeof source === "string" ? source : await source();
}
async function authHeaders(token, extra = {}) {
  const value = await resolveToken(token);
  return value === void 0 ? {
    ...extra
  } : {
    ...extra,
    authorization: `Bearer ${value}`
  };
}
var REQUEST_TIMEOUT_MS = 3e4;
async function getJson(http, path, query = {}, signal, waitMs = 0) {
  const deadline = new Deadline(waitMs + REQUEST_TIMEOUT_MS, signal);
  try {
    let response;
    try {
      response = await http.fetch(joinUrl(http.baseUrl, path, query), {
        headers: await authHeaders(http.token, {
          accept: "application/json"
        }),
        signal: deadline.signal
      });
    } catch (error) {
      throw deadline.explain(error, () => unreachable(http.baseUrl, error));
    }
    if (!response.ok) throw await errorFromResponse(response);
    try {
      return await response.json();
    } catch (error) {
      throw deadline.explain(error, () => new JobwireError("invalid_response", "The server's reply is not JSON", {
        cause: error
      }));
    }
  } finally {
    deadline.clear();
  }
}
var Deadline = class {
  signal;
  #timedOut = false;
  #ms;
  #timer;
  #parent;
  #forward;
  constructor(ms, parent) {
    const abort = new AbortController();
    this.signal = abort.signal;
    this.#ms = ms;
    this.#parent = parent;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      abort.abort();
    }, ms);
    this.#forward = () => abort.abort(parent?.reason);
    if (parent?.aborted) this.#forward();
    parent?.addEventListener("abort", this.#forward, {
      once: true
    });
  }
  /**
   * What a failed request should throw: the parent's abort as is, a timeout as a
   * `network_error`, anything else as `otherwise` makes it.
   */
  explain(error, otherwise) {
    if (this.#timedOut) {
      return new JobwireError("network_error", `No answer within ${this.#ms} ms`, {
        cause: error
      });
    }
    if (isAbort(error) || error instanceof JobwireError) return error;
    return otherwise();
  }
  /** Whether the timer fired (not the parent signal). */
  get timedOut() {
    return this.#timedOut;
  }
  /** Cancels the timer. */
  clear() {
    clearTimeout(this.#timer);
    this.#parent?.removeEventListener("abort", this.#forward);
  }
};
function jobPath(jobId) {
  return `/jobs/${encodeURIComponent(jobId)}`;
}
function fetchJob(http, jobId, signal) {
  return getJson(http, jobPath(jobId), {}, signal);
}
function fetchEventsPage(http, jobId, options, signal) {
  return getJson(http, `${jobPath(jobId)}/events`, {
    since: options.since,
    limit: options.limit ?? 1e3,
    wait: options.wait,
    ticket: options.ticket
  }, signal, (options.wait ?? 0) * 1e3);
}

// src/client/backoff.ts
function backoffDelay(attempt, options, random = Math.random()) {
  if (!(attempt >= 1)) throw new RangeError(`Backoff attempt must be 1 or more: ${attempt}`);
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1));
  return Math.floor(random * Math.max(0, ceiling));
}
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, {
      once: true
    });
  });
}

// src/client/transport.ts
function targetJobIds(target) {
  switch (target.kind) {
    case "job":
      return [
        target.jobId
      ];
    case "jobs":
      return target.jobIds;
    case "all":
      return [];
  }
}
function followedJobIds(options) {
  const all = targetJobIds(options.target);
  if (options.target.kind !== "jobs") return all;
  const live = all.filter((id) => options.cursors.has(id));
  return live.length > 0 ? live : all;
}
function streamLocation(options, transport) {
  const { target, cursors } = options;
  const query = {
    ticket: options.ticket
  };
  if (transport === "websocket") {
    query.token = options.token;
    query.batch = 1;
  }
  if (target.kind === "all") {
    query.all = 1;
    query.kind = target.filter.kind;
    query.status = target.filter.status;
    return {
      path: transport === "websocket" ? "/ws" : "/events",
      query
    };
  }
  if (target.closeOnFinish) query.close_on_finish = 1;
  if (target.kind === "job") {
    if (transport === "websocket") query.since = cursors.get(target.jobId) ?? 0;
    const path = `/jobs/${encodeURIComponent(target.jobId)}`;
    return {
      path: transport === "websocket" ? `/ws${path}` : `${path}/events`,
      query
    };
  }
  const ids = followedJobIds(options);
  query.jobs = ids.join(",");
  query.since = ids.map((id) => `${id}:${cursors.get(id) ?? 0}`).join(",");
  return {
    path: transport === "websocket" ? "/ws" : "/events",
    query
  };
}

// src/client/credentials.ts
async function streamCredentials(transport, target, options) {
  try {
    const token = transport === "websocket" ? await resolveToken(options.token) : void 0;
    let ticket;
    if (transport !== "poll" && options.getTicket !== void 0) {
      ticket = await options.getTicket(targetJobIds(target)[0] ?? "");
    }
    return {
      token,
      ticket
    };
  } catch (cause) {
    throw new JobwireError("connect_failed", `Cannot get credentials: ${cause}`, {
      cause
    });
  }
}

// src/client/greeting.ts
async function fetchGreeting(http, jobId, first, signal, since) {
  const job = await fetchJob(http, jobId, signal);
  const ahead = since !== void 0 && since > job.last_sequence;
  return {
    type: first ? "connection" : "subscribed",
    job_id: jobId,
    sequence: null,
    timestamp: (/* @__PURE__ */ new Date()).toISOString(),
    data: {
      last_sequence: job.last_sequence,
      job,
      ...ahead ? {
        replay: {
          since,
          count: 0,
          from: null,
          to: null,
          truncated: true,
          first_available: job.first_sequence ?? 1
        }
      } : {}
    }
  };
}

// src/client/types.ts
var TERMINAL_STATUSES = [
  "completed",
  "failed",
  "cancelled"
];
function isTerminalStatus(status) {
  return TERMINAL_STATUSES.includes(status);
}

// src/client/poll_transport.ts
function openPoll(options, handlers) {
  const abort = new AbortController();
  let done = false;
  let opened = false;
  const finish = (info) => {
    if (done) return;
    done = true;
    abort.abort();
    handlers.close(info);
  };
  const jobIds = followedJobIds(options);
  let following = jobIds.length;
  if (jobIds.length === 0) {
    setTimeout(() => finish({
      opened: false,
      code: null,
      reason: "long-poll cannot follow every job",
      unsupported: true
    }), 0);
  } else {
    const loops = jobIds.map(async (jobId, i) => {
      let greeted = false;
      try {
        const greeting = await fetchGreeting(options.http, jobId, i === 0, abort.signal, options.cursors.get(jobId));
        if (done) return;
        if (!opened) {
          opened = true;
          handlers.open();
        }
        handlers.message(greeting);
        greeted = true;
        await follow(options, handlers, jobId, abort.signal, () => done);
      } catch (error) {
        const gone = error instanceof JobwireError && (error.status === 404 || error.status === 410);
        if (!gone || done || !greeted && following <= 1 || options.target.kind === "job") {
          throw error;
        }
        following--;
        handlers.message({
          type: greeted ? "deleted" : "error",
          job_id: jobId,
          sequence: null,
          timestamp: (/* @__PURE__ */ new Date()).toISOString(),
          data: greeted ? {
            reason: error.message
          } : {
            error: error.message,
            error_type: "not_found",
            code: error.code
          }
        });
      }
    });
    Promise.all(loops).then(() => finish({
      opened: true,
      code: 1e3,
      reason: "closed"
    }), (error) => {
      if (done || isAbort(error)) return;
      finish({
        opened,
        code: null,
        reason: "request failed",
        error: error instanceof JobwireError ? error : new JobwireError("network_error", String(error), {
          cause: error
        })
      });
    });
  }
  return {
    transport: "poll",
    send: () => false,
    close() {
      done = true;
      abort.abort();
    }
  };
}
async function follow(options, handlers, jobId, signal, closed) {
  let since = options.cursors.get(jobId) ?? 0;
  let more = false;
  while (!closed()) {
    const page = await fetchEventsPage(options.http, jobId, {
      since,
      ...more ? {} : {
        wait: options.pollWaitSeconds
      }
    }, signal);
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
        timestamp: (/* @__PURE__ */ new Date()).toISOString(),
        data: {
          last_sequence: page.last_sequence
        }
      });
      if (since > page.last_sequence) since = page.last_sequence;
      else if (isTerminalStatus(page.status)) await sleep(options.pollWaitSeconds * 1e3, signal);
    }
  }
}

// src/client/quality.ts
var QUALITY_THRESHOLDS_MS = {
  excellent: 50,
  good: 150,
  fair: 300
};
function qualityOf(rttMs) {
  if (!Number.isFinite(rttMs) || rttMs < 0) return "unknown";
  if (rttMs < QUALITY_THRESHOLDS_MS.excellent) return "excellent";
  if (rttMs < QUALITY_THRESHOLDS_MS.good) return "good";
  if (rttMs < QUALITY_THRESHOLDS_MS.fair) return "fair";
  return "poor";
}
var QualityMeter = class {
  #quality = "unknown";
  #rttMs = null;
  #onChange;
  /** @param onChange told when the quality changes */
  constructor(onChange) {
    this.#onChange = onChange;
  }
  get quality() {
    return this.#quality;
  }
  /** Last measured round trip, in ms, or `null`. */
  get rttMs() {
    return this.#rttMs;
  }
  /**
   * Measures a pong whose `data.client_time` echoes our ping's `Date.now()`.
   *
   * @param now the current time in ms (`Date.now()` unless given)
   */
  pong(data, now = Date.now()) {
    const sent = data?.client_time;
    if (typeof sent !== "number") return;
    this.#rttMs = Math.max(0, now - sent);
    this.#set(qualityOf(this.#rttMs));
  }
  /** Forgets the measurement (the connection is gone). */
  reset() {
    this.#rttMs = null;
    this.#set("unknown");
  }
  #set(quality) {
    if (quality === this.#quality) return;
    this.#quality = quality;
    this.#onChange(quality, this.#rttMs);
  }
};

// src/client/reachability.ts
var FATAL_STATUSES = /* @__PURE__ */ new Set([
  400,
  401,
  403,
  404,
  410,
  422
]);
var JOB_NOT_FOUND = 4004;
var POLICY = 1008;
var POLICY_ERRORS = {
  "authentication required": [
    "unauthorized",
    401,
    "Authentication required: send a bearer token"
  ],
  "invalid token": [
    "invalid_token",
    401,
    "The token is invalid"
  ],
  "invalid ticket": [
    "invalid_token",
    401,
    "The ticket is unknown, used or expired"
  ],
  "token expired": [
    "token_expired",
    401,
    "The token has expired"
  ],
  "token revoked": [
    "invalid_token",
    401,
    "The token was revoked (signed out, or its user removed)"
  ],
  "origin not allowed": [
    "origin_not_allowed",
    403,
    "This Origin may not use the API (see --allowed-origins)"
  ],
  "host not allowed": [
    "host_not_allowed",
    403,
    "This server without authentication does not answer to this host name (see --allowed-hosts)"
  ],
  forbidden: [
    "forbidden",
    403,
    "Not allowed"
  ]
};
function fatalError(info, refreshable, jobId) {
  if (info.code === JOB_NOT_FOUND) {
    const code = info.errorCode ?? "job_not_found";
    const gone = code === "job_gone";
    const message = jobId === void 0 ? info.reason || "Job not found" : gone ? `Job ${jobId} was deleted or purged` : `No job ${jobId}`;
    return new JobwireError(code, message, {
      status: gone ? 410 : 404
    });
  }
  const known = info.code === POLICY ? POLICY_ERRORS[info.reason] : void 0;
  const curable = known === void 0 || known[1] === 401;
  if (info.code === POLICY && (!refreshable || !curable)) {
    if (known === void 0) {
      return new JobwireError("forbidden", info.reason || "Policy violation");
    }
    const [code, status, message] = known;
    return new JobwireError(code, code === "forbidden" && jobId !== void 0 ? `No access to job ${jobId}` : message, {
      status
    });
  }
  return isFatal(info.error, refreshable) ? info.error : void 0;
}
function isFatal(error, refreshable) {
  if (!(error instanceof JobwireError) || error.status === null) return false;
  if (error.status === 401 && refreshable) return false;
  return FATAL_STATUSES.has(error.status);
}
async function probeServer(http, jobId, since, signal, refreshable = false, timeoutMs = 1e4) {
  const deadline = new Deadline(timeoutMs, signal);
  try {
    if (jobId === void 0) await getJson(http, "/jobs", {
      limit: 1
    }, deadline.signal);
    else await fetchEventsPage(http, jobId, {
      since,
      limit: 1
    }, deadline.signal);
    return {
      ok: true
    };
  } catch (caught) {
    const error = deadline.timedOut ? new JobwireError("network_error", `No answer from ${http.baseUrl} within ${timeoutMs} ms`, {
      cause: caught
    }) : caught instanceof JobwireError ? caught : new JobwireError("network_error", String(caught), {
      cause: caught
    });
    return {
      ok: false,
      fatal: isFatal(error, refreshable),
      error
    };
  } finally {
    deadline.clear();
  }
}

// src/client/sse_parser.ts
var SseParser = class {
  #buffer = "";
  #event = "";
  #data = [];
  #id;
  #retry;
  #sawCr = false;
  /**
   * Parses `chunk` (text, already decoded).
   *
   * @returns the messages completed by this chunk
   */
  feed(chunk) {
    const out = [];
    let text = chunk;
    if (this.#sawCr && text.startsWith("\n")) text = text.slice(1);
    this.#sawCr = false;
    this.#buffer += text;
    const breaks = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = breaks.exec(this.#buffer)) !== null) {
      const line = this.#buffer.slice(start, match.index);
      start = breaks.lastIndex;
      if (match[0] === "\r" && start === this.#buffer.length) this.#sawCr = true;
      const message = this.#line(line);
      if (message !== void 0) out.push(message);
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }
  #line(line) {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return void 0;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.#retry = Number(value);
        break;
    }
    return void 0;
  }
  #dispatch() {
    const retry = this.#retry;
    this.#retry = void 0;
    if (this.#data.length === 0) {
      this.#event = "";
      return void 0;
    }
    const message = {
      event: this.#event === "" ? "message" : this.#event,
      data: this.#data.join("\n"),
      id: this.#id,
      retry
    };
    this.#event = "";
    this.#data = [];
    return message;
  }
};

// src/client/sse_transport.ts
function openSse(options, handlers) {
  const abort = new AbortController();
  let done = false;
  const finish = (info) => {
    if (done) return;
    done = true;
    abort.abort();
    handlers.close(info);
  };
  run(options, handlers, abort.signal, () => done).then(finish, (error) => {
    if (!done && !isAbort(error)) {
      finish({
        opened: false,
        code: null,
        reason: String(error),
        error: toError(error)
      });
    }
  });
  return {
    transport: "sse",
    send: () => false,
    close() {
      done = true;
      abort.abort();
    }
  };
}
async function run(options, handlers, signal, closed) {
  const { target, cursors } = options;
  const { path, query } = streamLocation(options, "sse");
  const extra = {
    accept: "text/event-stream"
  };
  if (target.kind === "job") extra["last-event-id"] = String(cursors.get(target.jobId) ?? 0);
  let response;
  try {
    response = await options.http.fetch(joinUrl(options.http.baseUrl, path, query), {
      headers: await authHeaders(options.http.token, extra),
      signal
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    return {
      opened: false,
      code: null,
      reason: "network error",
      error: unreachable(options.http.baseUrl, error)
    };
  }
  if (response.status === 204 && target.kind === "job") {
    handlers.open();
    handlers.message(await fetchGreeting(options.http, target.jobId, true, signal));
    return {
      opened: true,
      code: 1e3,
      reason: "job finished"
    };
  }
  if (!response.ok) {
    return {
      opened: false,
      code: null,
      reason: "refused",
      error: await errorFromResponse(response)
    };
  }
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("text/event-stream") || response.body === null) {
    await response.body?.cancel().catch(() => {
    });
    return {
      opened: false,
      code: null,
      reason: "not an event stream",
      unsupported: true,
      error: new JobwireError("connect_failed", `Expected an event stream, got ${type || "no body"}`)
    };
  }
  handlers.open();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let end;
  try {
    for (; ; ) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const message of parser.feed(decoder.decode(value, {
        stream: true
      }))) {
        if (closed()) return {
          opened: true,
          code: null,
          reason: "closed"
        };
        let envelope;
        try {
          envelope = JSON.parse(message.data);
        } catch {
          continue;
        }
        const closeCode = envelope.data?.close_code;
        if (message.event === "error" && typeof closeCode === "number") {
          const errorCode = envelope.data.code;
          end = {
            code: closeCode,
            reason: String(envelope.data.error ?? ""),
            ...typeof errorCode === "string" ? {
              errorCode
            } : {}
          };
          continue;
        }
        handlers.message(envelope);
      }
    }
  } catch (error) {
    if (isAbort(error)) throw error;
    return {
      opened: true,
      code: 1006,
      reason: "connection lost",
      // The server answered: the stream was cut while it was being read.
      error: error instanceof JobwireError ? error : new JobwireError("network_error", `The stream was cut: ${networkReason(error)}`, {
        cause: error
      })
    };
  }
  return {
    opened: true,
    code: end?.code ?? 1e3,
    reason: end?.reason ?? "stream ended",
    ...end?.errorCode === void 0 ? {} : {
      errorCode: end.errorCode
    }
  };
}
function toError(error) {
  return error instanceof JobwireError ? error : new JobwireError("network_error", `The stream failed: ${networkReason(error)}`, {
    cause: error
  });
}

// src/client/timers.ts
var Timers = class {
  #pending = /* @__PURE__ */ new Map();
  /** Runs `fn` after `ms` milliseconds, replacing the pending timer of `name`. */
  set(name, ms, fn) {
    this.clear(name);
    this.#pending.set(name, setTimeout(() => {
      this.#pending.delete(name);
      fn();
    }, ms));
  }
  /** Cancels the pending timer of `name`, if any. */
  clear(name) {
    const timer = this.#pending.get(name);
    if (timer !== void 0) clearTimeout(timer);
    this.#pending.delete(name);
  }
  /** Cancels every pending timer. */
  clearAll() {
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
  }
};

// src/client/transport_ladder.ts
var TransportLadder = class {
  transports;
  #index = 0;
  #failures = 0;
  #fallbackAfter;
  /**
   * @param transports usable transports, in order of preference
   * @param fallbackAfter failed attempts in a row before trying the next transport
   */
  constructor(transports, fallbackAfter) {
    this.transports = transports;
    this.#fallbackAfter = fallbackAfter;
  }
  /** The transport to use now, or `undefined` when none is usable. */
  get current() {
    return this.transports[this.#index];
  }
  /** The server greeted a connection: this transport works. */
  succeeded() {
    this.#failures = 0;
  }
  /** Whether there is a transport to fall back to. */
  get canFallBack() {
    return this.#index < this.transports.length - 1;
  }
  /**
   * An attempt failed before the server greeted it, and the server answered plain HTTP
   * right after (or the transport cannot work here at all: `unsupported`).
   *
   * @returns `step` to move on to the next transport, `stay` to retry this one
   */
  failed(unsupported) {
    this.#failures++;
    if (!this.canFallBack) return "stay";
    if (unsupported) return "step";
    return this.#failures >= this.#fallbackAfter ? "step" : "stay";
  }
  /** An attempt failed while the server did not answer either: the count starts again. */
  serverDown() {
    this.#failures = 0;
  }
  /** Moves to the next transport. */
  step() {
    if (this.#index < this.transports.length - 1) this.#index++;
    this.#failures = 0;
  }
  /** Forgets failures (a manual reconnect). */
  reset() {
    this.#failures = 0;
  }
};

// src/client/websocket_transport.ts
var OPEN = 1;
function openWebSocket(options, handlers) {
  const { path, query } = streamLocation(options, "websocket");
  const url = toWebSocketUrl(joinUrl(options.http.baseUrl, path, query));
  let done = false;
  let opened = false;
  let socket;
  const finish = (info) => {
    if (done) return;
    done = true;
    handlers.close(info);
  };
  const failed = (cause) => new JobwireError("connect_failed", "The WebSocket connection failed", {
    cause
  });
  try {
    const Ctor = options.WebSocket;
    if (Ctor === void 0) throw new TypeError("No WebSocket implementation");
    const ws = new Ctor(url);
    socket = ws;
    let ending;
    ws.onopen = () => {
      if (done) return;
      opened = true;
      handlers.open();
    };
    ws.onmessage = (event) => {
      if (done || typeof event.data !== "string") return;
      for (const line of event.data.split("\n")) {
        if (done) return;
        let message;
        try {
          message = JSON.parse(line);
        } catch {
          continue;
        }
        if (message.type === "error" && typeof message.data?.close_code === "number") {
          ending = typeof message.data.code === "string" ? message.data.code : void 0;
          continue;
        }
        handlers.message(message);
      }
    };
    ws.onclose = (event) => {
      finish({
        opened,
        code: event.code,
        reason: event.reason,
        ...ending === void 0 ? {} : {
          errorCode: ending
        },
        ...opened ? {} : {
          error: failed()
        }
      });
    };
    ws.onerror = (event) => {
      if (!opened) {
        finish({
          opened,
          code: null,
          reason: "connection failed",
          error: failed(event)
        });
      }
    };
  } catch (error) {
    setTimeout(() => finish({
      opened: false,
      code: null,
      reason: "connection failed",
      error: failed(error)
    }), 0);
  }
  return {
    transport: "websocket",
    send(message) {
      if (done || socket === void 0 || socket.readyState !== OPEN) return false;
      try {
        socket.send(JSON.stringify(message));
        return true;
      } catch {
        return false;
      }
    },
    close() {
      if (done) return;
      done = true;
      try {
        socket?.close(1e3, "client closed");
      } catch {
      }
    }
  };
}

// src/client/connection_loop.ts
var CONNECTORS = {
  websocket: openWebSocket,
  sse: openSse,
  poll: openPoll
};
var ConnectionLoop = class {
  #emitter;
  #sequencer;
  #http;
  #target;
  #options;
  #ladder;
  #timers = new Timers();
  #state = "connecting";
  #meter = new QualityMeter((quality, rttMs) => this.#emitter.emit("quality", {
    quality,
    rttMs
  }));
  #transport = null;
  #attempt = 0;
  #stopped = false;
  #conn;
  #greeted = false;
  /** Bumped for each connection; callbacks of older ones are ignored. */
  #generation = 0;
  /** The connection whose gap could not be filled: the rest of what it sent is passed over. */
  #abandoned = -1;
  #queue = Promise.resolve();
  #abort = new AbortController();
  constructor(context) {
    this.#emitter = context.emitter;
    this.#sequencer = context.sequencer;
    this.#http = context.http;
    this.#target = context.target;
    this.#options = context.options;
    this.#ladder = new TransportLadder(context.options.transports, context.options.fallbackAfter);
  }
  get state() {
    return this.#state;
  }
  get quality() {
    return this.#meter.quality;
  }
  get rttMs() {
    return this.#meter.rttMs;
  }
  get transport() {
    return this.#transport;
  }
  get stopped() {
    return this.#stopped;
  }
  /** Aborted when the loop stops (cancels page fetches). */
  get signal() {
    return this.#abort.signal;
  }
  /** Connects on the next tick (so listeners added right after construction see it all). */
  start() {
    this.#timers.set("reconnect", 0, () => this.#connect());
  }
  /** Connects again now with a fresh attempt count, even after the loop stopped. */
  restart() {
    this.#drop();
    this.#timers.clearAll();
    if (this.#stopped) {
      this.#stopped = false;
      this.#abort = new AbortController();
    }
    this.#attempt = 0;
    this.#ladder.reset();
    this.#connect();
  }
  async #connect() {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const transport = this.#ladder.current;
    if (transport === void 0) {
      this.#fail(new JobwireError("connect_failed", "No transport is usable in this runtime"));
      return;
    }
    if (transport !== this.#transport) {
      const from = this.#transport;
      this.#transport = transport;
      this.#emitter.emit("transport", {
        from,
        to: transport,
        reason: from === null ? "first connection" : "fallback"
      });
    }
    let credentials;
    try {
      credentials = await streamCredentials(transport, this.#target, this.#options);
    } catch (error) {
      const info = {
        opened: false,
        code: null,
        reason: "no credentials"
      };
      this.#closeLater(generation, {
        ...info,
        error
      });
      return;
    }
    if (generation !== this.#generation || this.#stopped) return;
    const cursors = /* @__PURE__ */ new Map();
    for (const [id, track] of this.#sequencer.tracks) cursors.set(id, track.cursor);
    const current = () => generation === this.#generation;
    this.#greeted = false;
    this.#conn = CONNECTORS[transport]({
      http: this.#http,
      target: this.#target,
      cursors,
      ...credentials,
      WebSocket: this.#options.WebSocket,
      pollWaitSeconds: this.#options.pollWaitSeconds
    }, {
      open: () => current() && this.#startPings(),
      message: (message) => current() && this.#message(message),
      close: (info) => current() && this.#closeLater(generation, info)
    });
    const ms = this.#options.connectTimeoutMs;
    this.#timers.set("connect", ms, () => this.#drop({
      opened: false,
      code: null,
      reason: "connect timeout",
      error: new JobwireError("connect_failed", `No greeting within ${ms} ms`)
    }));
  }
  #startPings() {
    const interval = this.#options.pingIntervalMs;
    if (this.#conn?.transport !== "websocket" || interval <= 0) return;
    const ping = () => {
      this.#conn?.send({
        type: "ping",
        client_time: Date.now()
      });
      this.#timers.set("ping", interval, ping);
    };
    ping();
  }
  #message(message) {
    if (this.#stopped) return;
    const idle = this.#options.idleTimeoutMs;
    if (idle > 0) {
      this.#timers.set("idle", idle, () => this.#drop({
        opened: true,
        code: null,
        reason: "idle"
      }));
    }
    if (!this.#greeted && message.type !== "error") {
      this.#greeted = true;
      this.#timers.clear("connect");
      this.#attempt = 0;
      this.#ladder.succeeded();
      this.#state = "connected";
      this.#emitter.emit("connected", {
        transport: this.#transport
      });
    }
    if (message.type === "pong") {
      this.#meter.pong(message.data);
      return;
    }
    const generation = this.#generation;
    const resent = message.sequence !== null || message.type === "heartbeat";
    this.#queue = this.#queue.then(() => resent && generation === this.#abandoned ? void 0 : this.#sequencer.handle(message)).catch((error) => {
      if (this.#stopped || isAbort(error)) return;
      if (generation === this.#abandoned) return;
      this.#emitter.emit("error", asJobwireError(error, "connection_lost"));
      this.#abandoned = generation;
      if (generation === this.#generation) {
        this.#drop({
          opened: true,
          code: null,
          reason: "gap fill failed"
        });
      }
    }).then(() => {
      if (!this.#stopped && this.#done()) this.stop("finished");
    });
  }
  /** Closes the current connection ourselves; with `info`, handles it as a lost one. */
  #drop(info) {
    const conn = this.#conn;
    if (conn === void 0) return;
    const generation = ++this.#generation;
    conn.close();
    this.#conn = void 0;
    if (info !== void 0) this.#closeLater(generation, info);
  }
  #closeLater(generation, info) {
    const greeted = this.#greeted;
    this.#conn = void 0;
    this.#greeted = false;
    for (const name of [
      "ping",
      "connect",
      "idle"
    ]) this.#timers.clear(name);
    this.#queue = this.#queue.then(() => generation === this.#generation ? this.#closed(info, greeted) : void 0).catch((error) => this.#emitter.emit("error", asJobwireError(error, "connection_lost")));
  }
  async #closed(info, greeted) {
    if (this.#stopped) return;
    if (this.#done()) {
      this.stop("finished");
      return;
    }
    this.#meter.reset();
    if (greeted) {
      this.#emitter.emit("disconnected", {
        transport: this.#transport,
        code: info.code,
        reason: info.reason
      });
    }
    if (info.error !== void 0) this.#emitter.emit("error", info.error);
    const refreshable = typeof this.#options.token === "function" || this.#options.getTicket !== void 0;
    const target = this.#target;
    const fatal = fatalError(info, refreshable, target.kind === "job" ? target.jobId : void 0);
    if (fatal !== void 0) {
      this.#fail(fatal, fatal !== info.error);
      return;
    }
    let stepped = false;
    if (!greeted && this.#ladder.canFallBack) {
      const unsupported = info.unsupported === true;
      const [first] = targetJobIds(this.#target);
      const since = first === void 0 ? 0 : this.#sequencer.tracks.get(first)?.cursor ?? 0;
      const probe = unsupported ? {
        ok: true
      } : await probeServer(this.#http, first, since, this.#abort.signal, refreshable, this.#options.connectTimeoutMs);
      if (this.#stopped) return;
      if (!probe.ok && probe.fatal) {
        this.#fail(probe.error);
        return;
      }
      if (!probe.ok) {
        this.#emitter.emit("error", probe.error);
        this.#ladder.serverDown();
      } else if (this.#ladder.failed(unsupported) === "step") {
        this.#ladder.step();
        stepped = true;
      }
    }
    this.#scheduleReconnect(stepped);
  }
  #scheduleReconnect(immediate) {
    this.#attempt++;
    if (this.#attempt > this.#options.maxAttempts) {
      this.#emitter.emit("max_reconnect_attempts", {
        attempts: this.#options.maxAttempts
      });
      this.stop("max reconnect attempts");
      return;
    }
    const delayMs = immediate ? 0 : backoffDelay(this.#attempt, this.#options);
    this.#state = "reconnecting";
    const transport = this.#ladder.current ?? this.#transport;
    this.#emitter.emit("reconnecting", {
      attempt: this.#attempt,
      delayMs,
      transport
    });
    this.#timers.set("reconnect", delayMs, () => this.#connect());
  }
  /** Whether every followed job has ended and the watcher should stop. */
  #done() {
    return this.#target.kind !== "all" && this.#target.closeOnFinish && this.#sequencer.allFinished();
  }
  #fail(error, emit = true) {
    if (emit) this.#emitter.emit("error", error);
    this.stop(error.message);
  }
  /** Stops for good and emits `closed`. Idempotent. */
  stop(reason) {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#drop();
    this.#timers.clearAll();
    this.#abort.abort();
    this.#meter.reset();
    this.#state = "closed";
    this.#emitter.emit("closed", {
      reason
    });
  }
};

// src/client/emitter.ts
var Emitter = class {
  #listeners = /* @__PURE__ */ new Map();
  /**
   * Adds a listener.
   *
   * @returns a function that removes it
   */
  on(name, listener) {
    let set = this.#listeners.get(name);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    return () => this.off(name, listener);
  }
  /** Adds a listener called at most once. */
  once(name, listener) {
    const off = this.on(name, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }
  /** Removes a listener added with {@link on}. */
  off(name, listener) {
    this.#listeners.get(name)?.delete(listener);
  }
  /** Number of listeners of `name`. */
  listenerCount(name) {
    return this.#listeners.get(name)?.size ?? 0;
  }
  /** Calls every listener of `name` with `payload`, in the order they were added. */
  emit(name, payload) {
    const set = this.#listeners.get(name);
    if (set === void 0) return;
    for (const listener of [
      ...set
    ]) {
      try {
        listener(payload);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }
  /** Removes every listener. */
  clear() {
    this.#listeners.clear();
  }
};
function reportListenerError(error) {
  const report = globalThis.reportError;
  if (typeof report === "function") {
    report(error);
    return;
  }
  setTimeout(() => {
    throw error;
  }, 0);
}

// src/client/job_state.ts
var STATE_TYPES = /* @__PURE__ */ new Set([
  "status",
  "progress",
  "result",
  "error"
]);
function changesState(type) {
  return STATE_TYPES.has(type);
}
function isStallWarning(event) {
  return event.type === "log" && event.data.source === "jobwire" && event.data.stalled === true;
}
function applyEvent(job, event) {
  if (event.sequence <= job.last_sequence) return job;
  const next = {
    ...job,
    last_sequence: event.sequence,
    updated_at: event.timestamp,
    // As on the server: the warning marks the job stalled, and any later event clears it.
    stalled: isStallWarning(event)
  };
  const data = event.data;
  if (event.type !== "progress" && job.eta_seconds !== null) {
    const elapsed = (Date.parse(event.timestamp) - Date.parse(job.updated_at)) / 1e3;
    if (elapsed > 0) {
      next.eta_seconds = Math.max(0, Math.round((job.eta_seconds - elapsed) * 1e3) / 1e3);
    }
  }
  switch (event.type) {
    case "status": {
      const status = data.status;
      next.status = status;
      if (typeof data.message === "string") next.message = data.message;
      else if (isTerminalStatus(status) || status === "running" && job.status !== "running") next.message = null;
      if (status === "queued" && next.queued_at === null) next.queued_at = event.timestamp;
      if (status === "running" && next.started_at === null) next.started_at = event.timestamp;
      if (isTerminalStatus(status)) {
        next.completed_at = event.timestamp;
        next.eta_seconds = status === "completed" ? 0 : null;
        if (status === "completed") next.progress = 100;
      }
      break;
    }
    case "progress":
      if (typeof data.progress === "number") next.progress = data.progress;
      if (data.status === "running" && (next.status === "pending" || next.status === "queued")) {
        next.status = "running";
        if (next.started_at === null) next.started_at = event.timestamp;
        next.message = null;
      }
      if (typeof data.stage === "string") next.stage = data.stage;
      if (typeof data.message === "string") next.message = data.message;
      next.eta_seconds = typeof data.eta_seconds === "number" ? data.eta_seconds : null;
      break;
    case "result":
      next.result = data.results ?? null;
      next.has_result = next.result !== null;
      break;
    case "error":
      next.error = {
        error: String(data.error),
        error_type: typeof data.error_type === "string" ? data.error_type : "general",
        ...data.details === void 0 ? {} : {
          details: data.details
        }
      };
      break;
  }
  return next;
}
function isFinished(job, cursor) {
  return job !== void 0 && isTerminalStatus(job.status) && cursor >= job.last_sequence;
}

// src/client/sequencer.ts
var MISSING = /* @__PURE__ */ new Set([
  "job_not_found",
  "job_gone"
]);
var Sequencer = class {
  tracks = /* @__PURE__ */ new Map();
  #io;
  /** True for `all` watchers, which adopt jobs they learn of. */
  #adopting;
  /** True for watchers of several named jobs, which go on without one that is not there. */
  #several;
  /** Named jobs let go of: the server had no such job, or it was deleted. */
  #dropped = 0;
  /** Whether an `all` watcher has had its first list of jobs. */
  #listed = false;
  /**
   * @param since the starting cursor of each named job
   * @param kind what the watcher follows: one job, several named ones, or `all`
   */
  constructor(io, since, kind) {
    this.#io = io;
    this.#adopting = kind === "all";
    this.#several = kind === "jobs";
    for (const [id, cursor] of since) {
      this.tracks.set(id, {
        cursor,
        job: void 0,
        finished: false
      });
    }
  }
  /** Whether every followed job has finished (never for an `all` watcher). */
  allFinished() {
    if (this.#adopting) return false;
    if (this.tracks.size === 0) return this.#dropped > 0;
    for (const track of this.tracks.values()) if (!track.finished) return false;
    return true;
  }
  /**
   * Handles one message of the stream.
   *
   * @throws {JobwireError} `gap_fill_failed` when missing events could not be fetched;
   *   the caller reconnects from the cursors, which loses nothing
   */
  async handle(message) {
    if (this.#io.stopped()) return;
    const data = message.data ?? {};
    if (message.sequence !== null && message.job_id !== null) {
      await this.#event(message);
      return;
    }
    switch (message.type) {
      case "connection":
      case "subscribed":
        if (isJob(data.job) && message.job_id !== null) {
          await this.#greeting(message.job_id, data.job, data.replay);
        } else if (Array.isArray(data.jobs)) {
          const history = !this.#listed;
          this.#listed = true;
          for (const job of data.jobs) if (isJob(job)) await this.#adopt(job, history);
        }
        this.#io.emitter.emit("connection", message);
        break;
      case "heartbeat":
        if (message.job_id !== null && typeof data.last_sequence === "number") {
          await this.#catchUp(message.job_id, data.last_sequence);
        } else if (typeof data.last_sequences === "object" && data.last_sequences !== null) {
          for (const [id, last] of Object.entries(data.last_sequences)) {
            if (typeof last === "number") await this.#catchUp(id, last);
          }
        }
        break;
      case "created":
        if (isJob(data.job)) {
          await this.#adopt(data.job);
          this.#io.emitter.emit("created", {
            job_id: data.job.id,
            job: data.job
          });
        }
        break;
      case "deleted":
      case "unsubscribed":
        if (message.job_id !== null && (this.tracks.delete(message.job_id) || this.#adopting && message.type === "deleted")) {
          if (this.#several && message.type === "deleted") this.#dropped++;
          const reason = typeof data.reason === "string" ? data.reason : "job deleted";
          this.#io.emitter.emit("deleted", {
            job_id: message.job_id,
            reason
          });
        }
        break;
      case "error":
        if (this.#several && message.job_id !== null && MISSING.has(String(data.code)) && this.tracks.delete(message.job_id)) {
          this.#dropped++;
        }
        this.#io.emitter.emit("error", new JobwireError(typeof data.code === "string" ? data.code : "server_error", typeof data.error === "string" ? data.error : "The server reported an error", {
          status: STREAM_ERROR_STATUS[String(data.code)] ?? null,
          details: {
            job_id: message.job_id,
            ...data.details === void 0 ? {} : {
              details: data.details
            }
          }
        }));
        break;
    }
  }
  async #event(event) {
    let track = this.tracks.get(event.job_id);
    if (track === void 0) {
      if (!this.#adopting) return;
      track = {
        cursor: event.sequence - 1,
        job: void 0,
        finished: false
      };
      this.tracks.set(event.job_id, track);
      const job = await this.#io.fetchJob(event.job_id).catch(() => void 0);
      if (event.sequence <= track.cursor) return;
      this.#deliver(event.job_id, track, event);
      if (job !== void 0 && track.job === void 0 && !this.#io.stopped()) {
        this.#setJob(event.job_id, track, job);
      }
      return;
    }
    if (event.sequence <= track.cursor) return;
    if (event.sequence > track.cursor + 1) {
      await this.#fill(event.job_id, track, event.sequence - 1);
    }
    if (event.sequence <= track.cursor) return;
    this.#deliver(event.job_id, track, event);
  }
  async #greeting(jobId, job, replay) {
    let track = this.tracks.get(jobId);
    if (track === void 0) {
      if (!this.#adopting) return;
      track = {
        cursor: job.last_sequence,
        job: void 0,
        finished: false
      };
      this.tracks.set(jobId, track);
    }
    if (replaced(track, job)) {
      this.#restart(jobId, track, job);
      const upTo = replay?.from != null ? replay.from - 1 : job.last_sequence;
      if (upTo > 0) await this.#fill(jobId, track, upTo);
      return;
    }
    if (replay?.truncated === true) {
      this.#io.emitter.emit("truncated", {
        job_id: jobId,
        since: track.cursor,
        first_available: replay.first_available
      });
      const after = replay.from !== null ? replay.from - 1 : job.last_sequence;
      if (after > track.cursor || track.cursor > job.last_sequence) track.cursor = after;
    }
    this.#setJob(jobId, track, job);
  }
  async #adopt(job, history = false) {
    const track = this.tracks.get(job.id);
    if (track === void 0) {
      const fresh = {
        cursor: job.last_sequence,
        job: void 0,
        finished: false
      };
      this.tracks.set(job.id, fresh);
      this.#setJob(job.id, fresh, job, history);
      return;
    }
    if (replaced(track, job)) this.#restart(job.id, track, job);
    else this.#setJob(job.id, track, job);
    if (job.last_sequence > track.cursor) await this.#fill(job.id, track, job.last_sequence);
  }
  /** Follows a job made again under a followed id from its start. */
  #restart(jobId, track, job) {
    track.cursor = 0;
    track.finished = false;
    this.#setJob(jobId, track, job);
  }
  async #catchUp(jobId, last) {
    const track = this.tracks.get(jobId);
    if (track !== void 0 && last > track.cursor) await this.#fill(jobId, track, last);
  }
  /** Fetches and delivers the events after the cursor, up to `target` (or more). */
  async #fill(jobId, track, target) {
    const from = track.cursor + 1;
    let filled = 0;
    try {
      while (track.cursor < target && !this.#io.stopped()) {
        const page = await this.#io.fetchPage(jobId, track.cursor);
        if (page.truncated && page.first_available - 1 > track.cursor) {
          this.#io.emitter.emit("truncated", {
            job_id: jobId,
            since: track.cursor,
            first_available: page.first_available
          });
        }
        const before = track.cursor;
        for (const event of page.events) {
          if (event.sequence > track.cursor) {
            this.#deliver(jobId, track, event);
            if (event.sequence <= target) filled++;
          }
        }
        if (track.cursor === before || !page.has_more) break;
      }
    } catch (error) {
      throw new JobwireError("gap_fill_failed", `Cannot fetch events ${from}-${target} of job ${jobId}: ${String(error)}`, {
        cause: error
      });
    }
    this.#io.emitter.emit("gap", {
      job_id: jobId,
      from,
      to: target,
      filled
    });
  }
  #deliver(jobId, track, event) {
    if (this.#io.stopped()) return;
    track.cursor = event.sequence;
    let changed = false;
    if (track.job !== void 0 && event.sequence > track.job.last_sequence) {
      const stalled = track.job.stalled === true;
      track.job = applyEvent(track.job, event);
      changed = changesState(event.type) || track.job.stalled !== stalled;
    }
    this.#io.emitter.emit("event", event);
    if (changed) this.#io.emitter.emit("snapshot", {
      job_id: jobId,
      job: track.job
    });
    const terminal = event.type === "status" && isTerminalStatus(event.data.status);
    if (terminal || isFinished(track.job, track.cursor)) {
      this.#finish(jobId, track, terminal ? event.data.status : void 0);
    }
  }
  /** @param quiet a job found finished is marked so without a `finished` event */
  #setJob(jobId, track, job, quiet = false) {
    track.job = job;
    this.#io.emitter.emit("snapshot", {
      job_id: jobId,
      job
    });
    if (!isFinished(job, track.cursor)) return;
    if (quiet) track.finished = true;
    else this.#finish(jobId, track, void 0);
  }
  #finish(jobId, track, status) {
    if (track.finished) return;
    track.finished = true;
    this.#io.emitter.emit("finished", {
      job_id: jobId,
      status: status ?? track.job?.status ?? "completed",
      job: track.job
    });
  }
};
function isJob(value) {
  return typeof value === "object" && value !== null && typeof value.id === "string" && typeof value.last_sequence === "number";
}
function replaced(track, job) {
  return track.job !== void 0 && job.created_at !== track.job.created_at;
}

// src/client/watch_events.ts
var WATCHER_EVENT_NAMES = /* @__PURE__ */ new Set([
  "event",
  "connected",
  "disconnected",
  "reconnecting",
  "error",
  "max_reconnect_attempts",
  "quality",
  "snapshot",
  "connection",
  "finished",
  "transport",
  "gap",
  "truncated",
  "created",
  "deleted",
  "closed"
]);

// src/client/job_watcher.ts
var JobWatcher = class {
  #emitter = new Emitter();
  #sequencer;
  #loop;
  /** @internal Use `watchJob` or `watchJobs`. */
  constructor(baseUrl, target, since, options) {
    const http = {
      baseUrl,
      token: options.token,
      fetch: options.fetch
    };
    this.#sequencer = new Sequencer({
      emitter: this.#emitter,
      fetchPage: (jobId, after) => fetchEventsPage(http, jobId, {
        since: after
      }, this.#loop.signal),
      fetchJob: (jobId) => fetchJob(http, jobId, this.#loop.signal),
      stopped: () => this.#loop.stopped
    }, since, target.kind);
    this.#loop = new ConnectionLoop({
      emitter: this.#emitter,
      sequencer: this.#sequencer,
      http,
      target,
      options
    });
    if (options.signal?.aborted) {
      this.#loop.stop("aborted");
      return;
    }
    options.signal?.addEventListener("abort", () => this.#loop.stop("aborted"), {
      once: true
    });
    this.#loop.start();
  }
  /** Where the connection stands. */
  get state() {
    return this.#loop.state;
  }
  /** Round-trip quality of the WebSocket (`unknown` on other transports). */
  get quality() {
    return this.#loop.quality;
  }
  /** Last measured round trip, in ms, or `null`. */
  get rttMs() {
    return this.#loop.rttMs;
  }
  /** The transport in use (or being tried), `null` before the first attempt. */
  get transport() {
    return this.#loop.transport;
  }
  /** Snapshot of the (first) followed job, kept current from events. */
  get job() {
    return this.#sequencer.tracks.values().next().value?.job;
  }
  /** Snapshots of every followed job, by id. */
  get jobs() {
    const out = /* @__PURE__ */ new Map();
    for (const [id, { job }] of this.#sequencer.tracks) if (job !== void 0) out.set(id, job);
    return out;
  }
  /** Last sequence delivered for `jobId` (default: the first followed job); 0 before any. */
  lastSequence(jobId) {
    const track = jobId === void 0 ? this.#sequencer.tracks.values().next().value : this.#sequencer.tracks.get(jobId);
    return track?.cursor ?? 0;
  }
  /**
   * Adds a listener.
   *
   * @returns a function that removes it
   */
  on(name, listener) {
    return this.#emitter.on(knownName(name), listener);
  }
  /**
   * Adds a listener of the events of one type (`"model_deployed"`, `"progress"`, …), in
   * sequence order like {@link on}`("event")`.
   *
   * @returns a function that removes it
   */
  onEvent(type, listener) {
    return this.#emitter.on("event", (event) => {
      if (event.type === type) listener(event);
    });
  }
  /** Adds a listener called at most once. */
  once(name, listener) {
    return this.#emitter.once(knownName(name), listener);
  }
  /** Removes a listener. */
  off(name, listener) {
    this.#emitter.off(name, listener);
  }
  /** Stops for good: closes the connection, cancels timers and requests. Idempotent. */
  close() {
    this.#loop.stop("closed by the client");
  }
  /**
   * Connects again now with a fresh attempt count (the "retry" button after
   * `max_reconnect_attempts`). Resumes from the last delivered sequences.
   */
  reconnect() {
    this.#loop.restart();
  }
};
function knownName(name) {
  if (WATCHER_EVENT_NAMES.has(name)) return name;
  throw new TypeError(`A watcher emits no ${JSON.stringify(name)}: for the events of a type, use onEvent(${JSON.stringify(name)}, listener)`);
}

// src/client/watch_options.ts
var DEFAULT_TRANSPORTS = [
  "websocket",
  "sse",
  "poll"
];
function resolveWatchOptions(options) {
  const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (typeof fetchImpl !== "function") throw new TypeError("No fetch: pass options.fetch");
  const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
  const transports = (options.transports ?? DEFAULT_TRANSPORTS).filter((t, i, all) => all.indexOf(t) === i && (t !== "websocket" || WebSocketImpl !== void 0));
  return {
    token: options.token,
    getTicket: options.getTicket,
    transports,
    WebSocket: WebSocketImpl,
    fetch: fetchImpl,
    initialDelayMs: options.initialDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 3e4,
    maxAttempts: options.maxAttempts ?? 10,
    fallbackAfter: Math.max(1, options.fallbackAfter ?? 2),
    pingIntervalMs: options.pingIntervalMs ?? 15e3,
    connectTimeoutMs: options.connectTimeoutMs ?? 1e4,
    idleTimeoutMs: options.idleTimeoutMs ?? 75e3,
    // The server holds a long-poll for at most 60 s (and whole seconds).
    // At least 1: a wait of 0 would ask again at once, as fast as the server answers.
    pollWaitSeconds: Number.isFinite(options.pollWaitSeconds) ? Math.min(60, Math.max(1, Math.floor(options.pollWaitSeconds))) : 25,
    signal: options.signal
  };
}

// src/client/watch_job.ts
function watchJob(baseUrl, jobIdOrNumber, options = {}) {
  checkBaseUrl(baseUrl);
  const jobId = jobIdOf(jobIdOrNumber, "watchJob");
  const target = {
    kind: "job",
    jobId,
    closeOnFinish: options.closeOnFinish ?? true
  };
  return new JobWatcher(baseUrl, target, /* @__PURE__ */ new Map([
    [
      jobId,
      checkSince(options.since ?? 0)
    ]
  ]), resolveWatchOptions(options));
}
var MAX_JOBS = 100;
function watchJobs(baseUrl, options) {
  checkBaseUrl(baseUrl);
  const resolved = resolveWatchOptions(options);
  if (options.getTicket !== void 0 && (options.all === true || (options.jobs?.length ?? 0) > 1)) {
    throw new TypeError("getTicket needs a stream of one job: a ticket grants one job's stream (use token here)");
  }
  if (options.all === true) {
    const filter = {
      ...options.kind === void 0 ? {} : {
        kind: options.kind
      },
      ...options.status === void 0 ? {} : {
        status: options.status
      }
    };
    const transports = resolved.transports.filter((t) => t !== "poll");
    if (transports.length === 0 && resolved.transports.includes("poll")) {
      throw new TypeError("all: true cannot use long-poll, which reads one job's events: allow websocket or sse");
    }
    return new JobWatcher(baseUrl, {
      kind: "all",
      filter
    }, /* @__PURE__ */ new Map(), {
      ...resolved,
      transports
    });
  }
  const jobIds = [
    ...new Set((options.jobs ?? []).map((id) => jobIdOf(id, "watchJobs")))
  ];
  if (jobIds.length === 0) throw new TypeError("watchJobs needs jobs: [...] or all: true");
  if (jobIds.length > MAX_JOBS) {
    throw new TypeError(`watchJobs follows at most ${MAX_JOBS} jobs by name (the server's limit for one stream), not ${jobIds.length}: split them across watchers, or use all: true`);
  }
  const since = /* @__PURE__ */ new Map();
  for (const id of jobIds) {
    const value = typeof options.since === "object" ? options.since[id] : options.since;
    since.set(id, checkSince(value ?? 0));
  }
  const target = {
    kind: "jobs",
    jobIds,
    closeOnFinish: options.closeOnFinish ?? true
  };
  return new JobWatcher(baseUrl, target, since, resolved);
}
function checkSince(since) {
  if (!Number.isSafeInteger(since) || since < 0) {
    throw new RangeError(`since must be a non-negative integer: ${since}`);
  }
  return since;
}

// src/client/random_id.ts
function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[6] = bytes[6] & 15 | 64;
  bytes[8] = bytes[8] & 63 | 128;
  const hex = [
    ...bytes
  ].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// src/client/retry_request.ts
async function sendWithRetry(http, request, policy, onRetry) {
  const url = joinUrl(http.baseUrl, request.path);
  const body = request.body === void 0 ? void 0 : JSON.stringify(request.body);
  for (let attempt = 0; ; attempt++) {
    let failure;
    let waitMs;
    const deadline = new Deadline(policy.timeoutMs, request.signal);
    try {
      const headers = await authHeaders(http.token, {
        accept: "application/json",
        ...body === void 0 ? {} : {
          "content-type": "application/json"
        },
        ...request.idempotencyKey === void 0 ? {} : {
          "idempotency-key": request.idempotencyKey
        }
      });
      const response = await http.fetch(url, {
        method: request.method,
        headers,
        ...body === void 0 ? {} : {
          body
        },
        signal: deadline.signal
      });
      if (response.ok) {
        const text = await response.text();
        return text === "" ? void 0 : JSON.parse(text);
      }
      failure = await errorFromResponse(response);
      if (!failure.retryable) throw failure;
      waitMs = retryAfterMs(response.headers.get("retry-after"));
    } catch (caught) {
      const error = deadline.explain(caught, () => unreachable(http.baseUrl, caught));
      if (!(error instanceof JobwireError) || !error.retryable) throw error;
      failure = error;
    } finally {
      deadline.clear();
    }
    if (attempt >= policy.retries) throw failure;
    const backoff = backoffDelay(attempt + 1, policy);
    const delayMs = Math.min(policy.maxDelayMs, Math.max(backoff, waitMs ?? 0));
    onRetry?.(attempt + 1, failure, delayMs);
    await sleep(delayMs, request.signal);
  }
}
function retryAfterMs(value) {
  if (value === null) return void 0;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1e3;
  const at = Date.parse(value);
  return Number.isNaN(at) ? void 0 : Math.max(0, at - Date.now());
}

// src/client/job_reporter.ts
var JobReporter = class _JobReporter {
  /** The job's id. */
  jobId;
  #http;
  #policy;
  #flushMs;
  #batchSize;
  #onError;
  #onRetry;
  #dropped = 0;
  #split = 0;
  /** Whether the pending timer is the unreferenced retry of lines that could not be sent. */
  #retrying = false;
  #signal;
  /** Lines logged and not yet cut into batches. */
  #lines = [];
  /**
   * Batches to send, in order, each with the one key of all its tries and the number of the
   * cut that made it: a report sends the batches cut when it was called, not lines logged
   * after it.
   */
  #batches = [];
  #cuts = 0;
  #timer;
  #tail = Promise.resolve();
  /** Lines the server refused since the last flush (raised once). */
  #backgroundError;
  #closed = false;
  #job;
  /** Reports to an existing job. */
  constructor(baseUrl, jobId, options = {}) {
    checkBaseUrl(baseUrl);
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== "function") throw new TypeError("No fetch: pass options.fetch");
    this.jobId = jobIdOf(jobId, "JobReporter");
    this.#http = {
      baseUrl,
      token: options.token,
      fetch: fetchImpl
    };
    this.#policy = {
      retries: options.retries ?? 8,
      initialDelayMs: options.initialDelayMs ?? 200,
      maxDelayMs: options.maxDelayMs ?? 1e4,
      timeoutMs: options.timeoutMs ?? REQUEST_TIMEOUT_MS
    };
    this.#flushMs = options.logFlushMs ?? 250;
    this.#batchSize = Math.max(1, options.logBatchSize ?? 100);
    this.#onError = options.onError;
    this.#onRetry = options.onRetry;
    this.#signal = options.signal;
  }
  /**
   * Creates a job (`POST /jobs`) and returns its reporter. Retried like every request;
   * a retry answered "already exists" counts as created when the job holds what this call
   * sent and nothing happened to it yet (an earlier try made it, its reply lost).
   *
   * @throws {JobwireError} `job_exists` when the id was taken before this call
   */
  static async create(baseUrl, options = {}) {
    const reporter = new _JobReporter(baseUrl, options.id ?? randomId(), options);
    let retried = false;
    try {
      const reply = await sendWithRetry(reporter.#http, {
        method: "POST",
        path: "/jobs",
        body: {
          id: reporter.jobId,
          ...options.kind === void 0 ? {} : {
            kind: options.kind
          },
          ...options.metadata === void 0 ? {} : {
            metadata: options.metadata
          }
        },
        ...reporter.#signal === void 0 ? {} : {
          signal: reporter.#signal
        }
      }, reporter.#policy, () => retried = true);
      reporter.#job = reply.job;
    } catch (error) {
      const ours = retried || options.id === void 0;
      if (!(ours && error instanceof JobwireError && error.code === "job_exists")) throw error;
      const found = await sendWithRetry(reporter.#http, {
        method: "GET",
        path: `/jobs/${encodeURIComponent(reporter.jobId)}`,
        ...reporter.#signal === void 0 ? {} : {
          signal: reporter.#signal
        }
      }, reporter.#policy);
      if (found.kind !== (options.kind ?? null) || canonical(found.metadata ?? {}) !== canonical(options.metadata ?? {}) || found.status !== "pending" || found.last_sequence !== 0) {
        throw error;
      }
      reporter.#job = found;
    }
    return reporter;
  }
  /**
   * Log lines dropped: refused by the server (over its size limits, say), or still unsent
   * when `fail()` or `cancel()` ended the job.
   */
  get droppedLines() {
    return this.#dropped;
  }
  /** Log lines cut into batches and not sent yet (the server could not be reached). */
  get unsentLines() {
    let count = 0;
    for (const batch of this.#batches) count += batch.lines.length;
    return count;
  }
  /** Batches the server refused as too large, sent again in halves. */
  get splitBatches() {
    return this.#split;
  }
  /** The snapshot the server returned when {@link create} made the job. */
  get job() {
    return this.#job;
  }
  /** Moves the job to `queued`. */
  queued(message) {
    return this.#publish("/queue", message === void 0 ? {} : {
      message
    });
  }
  /** Moves the job to `running`. */
  started(message) {
    return this.#publish("/start", message === void 0 ? {} : {
      message
    });
  }
  /** Reports progress, 0–100 (`percentage` and an ETA are added by the server). */
  progress(progress, details = {}) {
    return this.#publish("/progress", {
      progress,
      ...details
    });
  }
  /**
   * Buffers a log line; it is sent within `logFlushMs`, before any later report.
   *
   * @param source where the line came from, such as `stdout` (the event's `source`)
   */
  log(line, level = "info", source) {
    if (this.#closed) throw closedError();
    this.#lines.push(source === void 0 ? {
      line,
      level
    } : {
      line,
      level,
      source
    });
    if (this.#lines.length >= this.#batchSize) {
      this.#flushLines();
    } else if (this.#timer === void 0 || this.#retrying) {
      this.#cancelTimer();
      this.#timer = setTimeout(() => this.#flushLines(), this.#flushMs);
    }
  }
  /** Publishes a custom event (`type` such as `training_progress`). */
  event(type, data = {}) {
    return this.#publish("/events", {
      type,
      data
    });
  }
  /** Records the result and moves the job to `completed`, in one commit. */
  complete(result, message) {
    return this.#publish("/complete", {
      ...result === void 0 ? {} : {
        result
      },
      ...message === void 0 ? {} : {
        message
      }
    });
  }
  /** Records the error and moves the job to `failed`, in one commit. */
  fail(error, errorType, details) {
    return this.#publish("/fail", {
      error: typeof error === "string" ? error : error.message,
      ...errorType === void 0 ? {} : {
        error_type: errorType
      },
      ...details === void 0 ? {} : {
        details
      }
    });
  }
  /** Moves the job to `cancelled`. */
  cancel(reason) {
    return this.#publish("/cancel", reason === void 0 ? {} : {
      reason
    });
  }
  /**
   * Sends buffered log lines and waits for every report made so far.
   *
   * @throws {JobwireError} the error that keeps lines from being sent (they stay buffered
   *   and go first next time), else that of lines the server refused since the last flush
   */
  flush() {
    const cut = this.#cut();
    return this.#queue(async () => {
      const unsent = await this.#sendLines(cut);
      if (unsent !== void 0) throw unsent;
      const refused = this.#backgroundError;
      this.#backgroundError = void 0;
      if (refused !== void 0) throw refused;
    });
  }
  /** Refuses further reports and lines from now on, and flushes what came before. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } finally {
      this.#cancelTimer();
    }
  }
  #publish(path, body) {
    if (this.#closed) return Promise.reject(closedError());
    const cut = this.#cut();
    return this.#queue(async () => {
      const unsent = await this.#sendLines(cut);
      if (path === "/fail" || path === "/cancel") {
        const reply = await this.#send(path, body);
        for (const batch of this.#batches) {
          if (batch.cut <= cut) this.#dropped += batch.lines.length;
        }
        this.#batches = this.#batches.filter((batch) => batch.cut > cut);
        this.#backgroundError = void 0;
        return reply;
      }
      this.#signal?.throwIfAborted();
      if (unsent !== void 0) throw unsent;
      return await this.#send(path, body);
    });
  }
  /** Sends the buffered lines in the background (a full batch, or the timer). */
  #flushLines() {
    const cut = this.#cut();
    void this.#queue(() => this.#sendLines(cut)).catch(() => {
    });
  }
  /** Cuts the lines logged so far into batches; returns the cut's number. */
  #cut() {
    this.#cancelTimer();
    const cut = ++this.#cuts;
    let batch = [];
    let size = 0;
    for (const line of this.#lines) {
      const length = line.line.length + (line.source?.length ?? 0) + 32;
      if (batch.length > 0 && (batch.length >= this.#batchSize || size + length > LOG_BATCH_CHARS)) {
        this.#batches.push({
          key: randomId(),
          lines: batch,
          cut
        });
        batch = [];
        size = 0;
      }
      batch.push(line);
      size += length;
    }
    if (batch.length > 0) this.#batches.push({
      key: randomId(),
      lines: batch,
      cut
    });
    this.#lines = [];
    return cut;
  }
  #cancelTimer() {
    if (this.#timer !== void 0) clearTimeout(this.#timer);
    this.#timer = void 0;
    this.#retrying = false;
  }
  /**
   * Sends the batches cut up to `cut`. A batch keeps its key until it lands. Batches the
   * server could not be reached for stay, in order, in front of later lines (the timer tries
   * again); a batch refused as too large goes again in halves, and a refused line is
   * dropped, its error kept for the next flush. Runs in the queue.
   *
   * @returns why batches up to `cut` are left unsent, if they are
   */
  async #sendLines(cut) {
    while (this.#batches.length > 0 && this.#batches[0].cut <= cut) {
      const { key, lines, cut: made } = this.#batches[0];
      try {
        await this.#post("/log", {
          lines
        }, key);
      } catch (caught) {
        const aborted = this.#signal?.aborted === true;
        const error = asJobwireError(caught, aborted ? "closed" : "network_error");
        if (aborted || error.retryable) {
          this.#onError?.(error);
          if (!this.#closed && !aborted) this.#armRetry();
          return error;
        }
        this.#batches.shift();
        if (error.status === 413 && lines.length > 1) {
          this.#split++;
          const half = Math.ceil(lines.length / 2);
          this.#batches.unshift({
            key: randomId(),
            lines: lines.slice(0, half),
            cut: made
          }, {
            key: randomId(),
            lines: lines.slice(half),
            cut: made
          });
        } else {
          this.#dropped += lines.length;
          this.#onError?.(error);
          if (this.#backgroundError === void 0 || this.#backgroundError.status === 413) {
            this.#backgroundError = error;
          }
        }
        continue;
      }
      this.#batches.shift();
    }
    return void 0;
  }
  /** Tries the lines left again after `logFlushMs`, without keeping the process alive. */
  #armRetry() {
    if (this.#timer !== void 0) return;
    this.#timer = setTimeout(() => this.#flushLines(), this.#flushMs);
    this.#retrying = true;
    unrefTimer(this.#timer);
  }
  /** Runs `work` after everything queued before it; the queue goes on whatever it does. */
  #queue(work) {
    const run2 = this.#tail.then(work);
    this.#tail = run2.catch(() => {
    });
    return run2;
  }
  /** One logical publish; one key for all its tries. */
  #send(path, body) {
    return this.#post(path, body, randomId());
  }
  #post(path, body, key) {
    const onRetry = this.#onRetry;
    return sendWithRetry(this.#http, {
      method: "POST",
      path: `${jobPath(this.jobId)}${path}`,
      body,
      idempotencyKey: key,
      ...this.#signal === void 0 ? {} : {
        signal: this.#signal
      }
    }, this.#policy, onRetry === void 0 ? void 0 : (_attempt, error, delayMs) => onRetry(error, delayMs));
  }
};
var LOG_BATCH_CHARS = 256 * 1024;
function closedError() {
  return new JobwireError("closed", "The reporter is closed");
}
function unrefTimer(timer) {
  const deno = globalThis.Deno;
  if (typeof timer === "number") deno?.unrefTimer?.(timer);
  else timer.unref?.();
}
function canonical(value) {
  return JSON.stringify(value, (_key, v) => v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) : v);
}
export {
  JobReporter,
  JobWatcher,
  JobwireError,
  QUALITY_THRESHOLDS_MS,
  SseParser,
  TERMINAL_STATUSES,
  applyEvent,
  backoffDelay,
  isTerminalStatus,
  qualityOf,
  watchJob,
  watchJobs
};
