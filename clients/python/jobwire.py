"""jobwire client for Python 3.8+, standard library only.

Report a job's progress from the code that does the work, and follow jobs from any
other: one file to copy into a project (or put on ``PYTHONPATH``), no dependencies.

    import os
    from jobwire import Client

    client = Client("http://localhost:8080", token=os.environ["JOBWIRE_TOKEN"])
    with client.create_job(kind="train", metadata={"model": "v3"}) as job:
        job.started()
        job.log("loading 10,000 rows")
        job.progress(45, stage="training", message="Epoch 15/20")
        job.complete({"accuracy": 0.968})

    for event in client.watch(job.job_id, since=0):
        print(event["sequence"], event["type"], event["data"])

Every request is retried on network errors, timeouts, 429 and 5xx, with backoff (and the
server's ``Retry-After``); a publish keeps one ``Idempotency-Key`` across its tries, so a
retry whose first reply was lost writes nothing twice. Other refusals raise
:class:`JobwireError` with the server's ``code``, ``status``, ``message`` and ``details``.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

__all__ = ["Client", "JobReporter", "JobwireError", "TERMINAL_STATUSES"]

#: Statuses after which a job takes no more events.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

#: Log levels the server accepts, and the other names it takes for them (any letter case).
LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})
LOG_LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "error", "critical": "error", "trace": "debug"}

#: Most bytes of log lines sent in one request (the server takes 1 MiB bodies by default).
LOG_BATCH_BYTES = 256 * 1024

#: Longest error message a failure report sends (an event's data is at most 64 KiB).
ERROR_CHARS = 8192

_log = logging.getLogger("jobwire")

Token = Union[str, Callable[[], Optional[str]], None]


_BEARER = re.compile(r"^\s*Bearer(\s+|$)", re.IGNORECASE)


class JobwireError(Exception):
    """A refusal from the server, or a request that could not be made.

    ``code`` is the server's stable error code (``job_not_found``, ``job_finished``,
    ``validation_error``, ...), or ``network`` / ``timeout`` / ``bad_response`` when no
    usable answer came; ``status`` is the HTTP status (0 without an answer).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 0,
        details: Any = None,
        retry_after: Optional[float] = None,
        sent: bool = True,
    ) -> None:
        super().__init__(f"{message} ({code}{f', HTTP {status}' if status else ''})")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.retry_after = retry_after
        #: Whether the request may have reached the server (false: it was never sent whole).
        self.sent = sent

    @property
    def retryable(self) -> bool:
        """Whether trying again may work: no answer, 429 or a server error."""
        return self.status == 0 or self.status == 429 or self.status >= 500


#: Longest wait a ``Retry-After`` gets (a proxy's maintenance page may ask for hours).
RETRY_AFTER_MAX = 60.0


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)


def _error_from(status: int, body: bytes, retry_after: Optional[str]) -> JobwireError:
    try:
        error = json.loads(body.decode("utf-8"))["error"]
        return JobwireError(
            str(error["code"]),
            str(error.get("message", "")),
            status,
            error.get("details"),
            _retry_after(retry_after),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return JobwireError(
            "bad_response", f"HTTP {status}: {text}", status, None, _retry_after(retry_after)
        )


class Client:
    """A jobwire server: its URL and the credentials to use.

    :param base_url: the server, such as ``http://localhost:8080`` or
        ``https://jobs.example.com``
    :param token: a bearer token, or a function returning the current one
    :param timeout: seconds to wait for one try's answer before it is retried
    :param retries: retries of each request after the first try
    :param initial_delay: ceiling of the first retry delay, in seconds
    :param max_delay: ceiling of every retry delay, in seconds
    """

    def __init__(
        self,
        base_url: str,
        token: Token = None,
        *,
        timeout: float = 30.0,
        retries: int = 8,
        initial_delay: float = 0.2,
        max_delay: float = 10.0,
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.initial_delay = initial_delay
        self.max_delay = max_delay

    # -- requests -----------------------------------------------------------------

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._token() if callable(self._token) else self._token
        if token:
            # A token pasted with the header's word before it ("Bearer eyJ...") is the token
            # after it, as the command line takes it.
            headers["Authorization"] = f"Bearer {_BEARER.sub('', token).strip()}"
        if extra:
            headers.update(extra)
        return headers

    def _path(self, path: str, query: Optional[Dict[str, Any]] = None) -> str:
        full = self._prefix + path
        if query:
            items = {k: v for k, v in query.items() if v is not None}
            if items:
                full += "?" + urllib.parse.urlencode(items)
        return full

    def _delay(self, attempt: int, error: JobwireError) -> float:
        """Full jitter, and at least what the server asked for with Retry-After."""
        ceiling = min(self.max_delay, self.initial_delay * (2 ** (attempt - 1)))
        delay = random.uniform(0, ceiling)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def _try(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        timeout: Optional[float],
    ) -> Tuple[int, http.client.HTTPMessage, bytes]:
        conn = self._connection(timeout)
        sent = False
        try:
            conn.request(method, path, body=body, headers=headers)
            sent = True
            response = conn.getresponse()
            raw = response.read()
            framed = response.headers.get("Content-Length") is not None or "chunked" in (
                response.headers.get("Transfer-Encoding") or ""
            ).lower()
            bodiless = response.status in (204, 304) or 100 <= response.status < 200
            if not framed and not bodiless and method != "HEAD":
                # Headers cut off before the body's length: http.client then reads nothing to
                # the end and calls it a reply. Whether the server acted is unknown: a retry
                # (with the request's Idempotency-Key) settles it.
                raise JobwireError(
                    "network", "The server's reply was cut off before its end", sent=True
                )
            return response.status, response.headers, raw
        except socket.timeout as error:
            raise JobwireError(
                "timeout", f"No answer from the server within {timeout} s", sent=sent
            ) from error
        except (OSError, http.client.HTTPException) as error:
            raise JobwireError("network", f"Request failed: {error}", sent=sent) from error
        finally:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Optional[Dict[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
        retry: bool = True,
        on_retry: Optional[Callable[[JobwireError], None]] = None,
        deadline: Optional[float] = None,
    ) -> Tuple[Any, http.client.HTTPMessage]:
        """Sends one request (retried unless ``retry`` is false); returns the JSON and headers.

        :param deadline: a ``time.monotonic()`` past which no try starts and no try waits
        :raises JobwireError: the server's refusal, the last failure once retries run out,
            or ``timeout`` when the deadline passes first
        """
        data = None if body is None else json.dumps(body).encode("utf-8")
        extra = {"Content-Type": "application/json"} if data is not None else {}
        if idempotency_key is not None:
            extra["Idempotency-Key"] = idempotency_key
        full = self._path(path, query)
        attempt = 0
        while True:
            attempt += 1
            wait = timeout or self.timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JobwireError("timeout", f"{method} {path}: out of time")
                wait = min(wait, left)
            try:
                status, headers, raw = self._try(method, full, data, self._headers(extra), wait)
                if 200 <= status < 300:
                    try:
                        return (json.loads(raw.decode("utf-8")) if raw else None), headers
                    except (ValueError, UnicodeDecodeError) as error:
                        raise JobwireError(
                            "bad_response", f"The answer is not JSON: {raw[:200]!r}", status
                        ) from error
                raise _error_from(status, raw, headers.get("Retry-After"))
            except JobwireError as error:
                if not retry or not error.retryable or attempt > self.retries:
                    raise
                if on_retry is not None:
                    on_retry(error)
                pause = self._delay(attempt, error)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise JobwireError("timeout", f"{method} {path}: out of time") from error
                time.sleep(pause)

    # -- jobs ---------------------------------------------------------------------

    def create_job(
        self,
        id: Optional[Union[str, int]] = None,
        *,
        kind: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        log_flush: float = 0.25,
        log_batch: int = 100,
        keep_open_on: Tuple[type, ...] = (),
    ) -> "JobReporter":
        """Creates a job and returns its reporter (see :class:`JobReporter` for the options).

        The id is a random UUID made here when none is given, so a retry whose first reply
        was lost finds the job it made and counts it as created.

        :raises JobwireError: ``job_exists`` when the id was taken before this call
        """
        job_id = str(uuid.uuid4()) if id is None else _job_id(id)
        body: Dict[str, Any] = {"id": job_id}
        if kind is not None:
            body["kind"] = kind
        if metadata is not None:
            body["metadata"] = metadata
        unanswered: List[JobwireError] = []
        try:
            reply, _ = self.request("POST", "/jobs", body, on_retry=_if_unanswered(unanswered))
            snapshot = reply["job"]
        except JobwireError as error:
            # A try sent without an answer may have made the job: the retry then finds it.
            # It is this call's only if it holds what this call sent and nothing happened to
            # it since (a job of someone else's under a chosen id would have).
            if not (unanswered and error.code == "job_exists"):
                raise
            snapshot = self.get_job(job_id)
            sent = _as_numbers(body)
            if (
                snapshot.get("kind") != sent.get("kind")
                or _as_numbers(snapshot.get("metadata")) != sent.get("metadata", {})
                or snapshot.get("status") != "pending"
                or snapshot.get("last_sequence") != 0
            ):
                raise
        reporter = JobReporter(
            self, job_id, log_flush=log_flush, log_batch=log_batch, keep_open_on=keep_open_on
        )
        reporter.job = snapshot
        return reporter

    def reporter(
        self,
        job_id: Union[str, int],
        *,
        log_flush: float = 0.25,
        log_batch: int = 100,
        keep_open_on: Tuple[type, ...] = (),
    ) -> "JobReporter":
        """A reporter for an existing job (see :class:`JobReporter` for the options)."""
        return JobReporter(
            self, job_id, log_flush=log_flush, log_batch=log_batch, keep_open_on=keep_open_on
        )

    def get_job(self, job_id: Union[str, int]) -> Dict[str, Any]:
        """The job's snapshot (``status``, ``progress``, ``result``, ``error``, ...)."""
        return self.request("GET", _job_path(job_id))[0]

    def delete_job(self, job_id: Union[str, int]) -> None:
        """Removes the job and its events; open streams on it close."""
        unanswered: List[JobwireError] = []
        try:
            self.request("DELETE", _job_path(job_id), on_retry=_if_unanswered(unanswered))
        except JobwireError as error:
            # A try sent without an answer may have deleted it: gone is what was asked for.
            if not (unanswered and error.code == "job_gone"):
                raise

    def events(
        self, job_id: Union[str, int], since: int = 0, limit: int = 1000
    ) -> Dict[str, Any]:
        """One page of the job's events after ``since``: ``events``, ``next_since``,
        ``has_more``, ``truncated`` and ``first_available``."""
        return self.request(
            "GET", _job_path(job_id) + "/events", query={"since": since, "limit": limit}
        )[0]

    def wait(self, job_id: Union[str, int], timeout: Optional[float] = None) -> Dict[str, Any]:
        """Blocks until the job is completed, failed or cancelled; returns its snapshot.

        :param timeout: seconds to wait at most (``None``: as long as it takes)
        :raises JobwireError: ``timeout`` when it passes first, ``job_gone`` when the job
            is deleted meanwhile; a server out of reach or answering 429 or 5xx is asked
            again until the timeout (for ever without one)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        warned = False
        if timeout is not None and timeout <= 0:
            snapshot = self.get_job(job_id)
            if snapshot["status"] in TERMINAL_STATUSES:
                return snapshot
        while True:
            left = 60.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise JobwireError("timeout", f"Job {job_id} did not end within {timeout} s")
            wait = max(1, min(60, int(left)))
            try:
                snapshot, headers = self.request(
                    "GET",
                    _job_path(job_id),
                    query={"wait": "terminal", "timeout": wait},
                    timeout=wait + self.timeout,
                    deadline=deadline,
                )
            except JobwireError as error:
                if error.code == "timeout" and deadline is not None and time.monotonic() >= deadline - 0.05:
                    raise JobwireError(
                        "timeout", f"Job {job_id} did not end within {timeout} s"
                    ) from error
                if not error.retryable:
                    raise
                # The server out of reach, restarting or overloaded past the request's own
                # retries: a wait of minutes outlasts a restart, as the CLI's does.
                pause = error.retry_after if error.retry_after is not None else 2.0
                if not warned:
                    warned = True
                    _log.warning("wait for job %s: %s; asking again", job_id, error.message)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    raise JobwireError(
                        "timeout",
                        f"Job {job_id} did not end within {timeout} s (last try: {error.message})",
                    ) from error
                time.sleep(pause)
                continue
            if headers.get("X-Wait-Result") != "timeout" and snapshot["status"] in TERMINAL_STATUSES:
                return snapshot

    def watch(
        self,
        job_id: Union[str, int],
        since: Optional[int] = None,
        *,
        until_finished: bool = True,
        include_session: bool = False,
        idle_timeout: float = 90.0,
        max_attempts: Optional[int] = 20,
    ) -> Iterator[Dict[str, Any]]:
        """Follows a job over Server-Sent Events; yields each event's envelope
        (``type``, ``job_id``, ``sequence``, ``timestamp``, ``data``) exactly once, in order.

        Reconnects after a dropped or dead connection (no heartbeat for ``idle_timeout``
        seconds) and resumes after the last event it yielded; an event the server skipped
        (superseded progress, for a slow reader) is fetched and yielded first.

        :param since: the last sequence already seen (0: from the start); ``None`` starts
            with the server's replay window (the last 100 events by default)
        :param until_finished: stop once the job is completed, failed or cancelled and
            every event up to that was yielded
        :param include_session: also yield ``connection`` and ``heartbeat`` messages
            (``sequence`` is ``None``); a ``connection`` message's ``data.replay`` says when
            events were already purged (``truncated``)
        :param max_attempts: failed connections in a row before giving up (``None``: never)
        :raises JobwireError: the job is unknown, deleted or not visible to this token, or
            connecting failed ``max_attempts`` times in a row
        """
        last = since
        failures = 0
        created: Optional[str] = None
        path = _job_path(job_id) + "/events"
        while True:
            conn = self._connection(idle_timeout)
            try:
                query: Dict[str, Any] = {"since": last}
                if until_finished:
                    query["close_on_finish"] = "1"
                conn.request(
                    "GET",
                    self._path(path, query),
                    headers=self._headers({"Accept": "text/event-stream"}),
                )
                response = conn.getresponse()
                if response.status != 200:
                    raise _error_from(
                        response.status, response.read(), response.headers.get("Retry-After")
                    )
                finish_at: Optional[int] = None
                for envelope in _sse_envelopes(response):
                    sequence = envelope.get("sequence")
                    kind = envelope.get("type")
                    data = envelope.get("data") or {}
                    if sequence is None:
                        if kind == "connection":
                            job = data.get("job") or {}
                            replay = data.get("replay") or {}
                            # Another job under the same id (deleted and made again while
                            # this was disconnected): its sequences are not this one's.
                            if created is not None and job.get("created_at") != created:
                                raise JobwireError(
                                    "job_gone", f"Job {job_id} was deleted and made again", 410
                                )
                            created = job.get("created_at")
                            # The server says where its replay starts: after `since` as asked,
                            # after the replay window without one, or elsewhere when `since`
                            # is gone (purged) or was never there (beyond the job's end).
                            count = replay.get("count") or 0
                            start = (
                                int(replay["from"]) - 1
                                if count > 0 and isinstance(replay.get("from"), int)
                                else int(job.get("last_sequence") or 0)
                            )
                            if last is None or replay.get("truncated"):
                                last = start
                            if job.get("status") in TERMINAL_STATUSES:
                                finish_at = int(job.get("last_sequence") or 0)
                        elif kind == "heartbeat":
                            # A connection that lived to its heartbeat is a working one.
                            failures = 0
                        elif kind == "error":
                            code = str(data.get("code", "stream_error"))
                            status = _STREAM_ERROR_STATUS.get(code, 0)
                            if status == 401 and callable(self._token):
                                status = 0  # the next connection asks for a fresh token
                            raise JobwireError(
                                code, str(data.get("error", "stream error")), status
                            )
                        if include_session:
                            yield envelope
                        if kind == "heartbeat" and last is not None:
                            ahead = data.get("last_sequence")
                            if isinstance(ahead, int) and ahead > last:
                                for missed in self._missed(job_id, last, ahead):
                                    yield missed
                                    last = missed["sequence"]
                        continue
                    if last is not None and sequence <= last:
                        continue
                    if last is not None and sequence > last + 1:
                        for missed in self._missed(job_id, last, sequence - 1):
                            yield missed
                            last = missed["sequence"]
                    yield envelope
                    last = sequence
                    failures = 0
                    if kind == "status" and data.get("status") in TERMINAL_STATUSES:
                        finish_at = sequence
                    if until_finished and finish_at is not None and last >= finish_at:
                        return
                if until_finished and finish_at is not None and last is not None and last >= finish_at:
                    return
                # The stream ended without the job ending: reconnect from where it stopped.
                failure = JobwireError("network", "The stream ended")
            except JobwireError as error:
                if not error.retryable:
                    raise
                failure = error
            except socket.timeout:
                failure = JobwireError("timeout", f"No message for {idle_timeout} s")
            except (OSError, http.client.HTTPException, ValueError) as error:
                failure = JobwireError("network", f"Stream failed: {error}")
            finally:
                conn.close()
            failures += 1
            if max_attempts is not None and failures > max_attempts:
                raise failure
            time.sleep(self._delay(failures, failure))

    def _missed(self, job_id: str, after: int, upto: int) -> Iterator[Dict[str, Any]]:
        """The events after ``after`` up to ``upto``, from the job's pages."""
        since = after
        while since < upto:
            page = self.events(job_id, since=since, limit=min(1000, upto - since))
            events = [e for e in page["events"] if since < e["sequence"] <= upto]
            if not events:
                return
            for event in events:
                yield event
            since = events[-1]["sequence"]


class JobReporter:
    """Reports one job's lifecycle, progress, logs and result.

    Reports are sent one at a time in call order. Log lines are buffered and sent together
    (one request per ``log_flush`` seconds, ``log_batch`` lines or 256 KiB), always before any
    later report, so the job's stream keeps the order of the calls. Lines the server refused
    (a line over its event size limit) make the next report or :meth:`flush` raise, and that
    report is not sent; the other lines of their batch are sent one by one. Safe to use from
    several threads.

    As a context manager it flushes on exit, and an exception leaving the block fails the
    job (``error_type`` is the exception's class in snake case) before it propagates,
    unless it is one of ``keep_open_on`` (a task queue's "retry later", such as Celery's
    ``Retry``), which leaves the job as it is for the next attempt.

    A report to a job that has ended raises ``job_finished``; :attr:`status` then says how
    it ended (``cancelled`` when someone cancelled it), and :meth:`refresh_status` asks
    the server at any time (a loop that only logs would not notice otherwise).
    """

    def __init__(
        self,
        client: Client,
        job_id: Union[str, int],
        *,
        log_flush: float = 0.25,
        log_batch: int = 100,
        keep_open_on: Tuple[type, ...] = (),
    ) -> None:
        self.client = client
        self.job_id = _job_id(job_id)
        self.keep_open_on = keep_open_on
        #: The snapshot the server returned when :meth:`Client.create_job` made the job.
        self.job: Optional[Dict[str, Any]] = None
        #: The status the last report left the job in, as the server said.
        self.status: Optional[str] = None
        self.log_flush = log_flush
        self.log_batch = max(1, log_batch)
        #: Lines logged since the last send, not yet in a batch, with their size as JSON.
        self._lines: List[Tuple[Dict[str, str], int]] = []
        self._line_bytes = 0
        #: Batches to send, in order, each with the Idempotency-Key all its tries carry.
        self._batches: List[Tuple[str, List[Dict[str, str]]]] = []
        #: Held while sending, so that sends keep the order of the calls.
        self._lock = threading.RLock()
        #: Held while the buffer, the timer or the closed flag change; never while sending.
        self._buffer = threading.Lock()
        self._timer: Optional[threading.Timer] = None
        #: Why lines were refused (they are gone); raised by the next report or flush.
        self._background_error: Optional[JobwireError] = None
        #: Why the batches could not be sent yet (they are kept and tried again).
        self._unsent_error: Optional[JobwireError] = None
        self._closed = False

    # -- reports ------------------------------------------------------------------

    def queued(self, message: Optional[str] = None) -> Dict[str, Any]:
        """Moves the job to ``queued``."""
        return self._publish("/queue", _only(message=message))

    def started(self, message: Optional[str] = None) -> Dict[str, Any]:
        """Moves the job to ``running``."""
        return self._publish("/start", _only(message=message))

    def progress(
        self,
        progress: Optional[float] = None,
        *,
        stage: Optional[str] = None,
        message: Optional[str] = None,
        current: Optional[float] = None,
        total: Optional[float] = None,
        eta_seconds: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Reports progress, 0-100 (or ``current`` of ``total``); the server adds
        ``percentage`` and estimates an ETA when none is given."""
        return self._publish(
            "/progress",
            _only(
                progress=progress,
                stage=stage,
                message=message,
                current=current,
                total=total,
                eta_seconds=eta_seconds,
            ),
        )

    def log(self, line: str, level: str = "info", source: Optional[str] = None) -> None:
        """Buffers a log line; it is sent within ``log_flush`` seconds, before any later report."""
        named = str(level).strip().lower()
        level = LOG_LEVEL_ALIASES.get(named, named)
        if level not in LOG_LEVELS:
            raise ValueError(f"level must be one of {sorted(LOG_LEVELS)} (or an alias), got {named!r}")
        entry = {"line": str(line), "level": level}
        if source is not None:
            entry["source"] = source
        # Only the buffer's lock: a send in progress (another thread's report, the timer's
        # retries) does not hold up a line, unless the buffer is full.
        with self._buffer:
            self._assert_open()
            size = len(json.dumps(entry))
            self._lines.append((entry, size))
            self._line_bytes += size
            full = len(self._lines) >= self.log_batch or self._line_bytes >= LOG_BATCH_BYTES
            # While the server cannot be reached, the timer tries again: log() never waits.
            send_now = full and self._unsent_error is None
            if not send_now:
                self._arm_timer()
        # A send in progress elsewhere (a report, the timer's retries) takes these lines
        # next: this call does not wait for it.
        if send_now and self._lock.acquire(blocking=False):
            try:
                if not self._closed:
                    self._send_lines()
            finally:
                self._lock.release()
        elif send_now:
            with self._buffer:
                self._arm_timer()

    def event(self, type: str, data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Publishes a custom event (``type`` such as ``training_progress``)."""
        return self._publish("/events", {"type": type, "data": data or {}})

    def complete(self, result: Any = None, message: Optional[str] = None) -> Dict[str, Any]:
        """Records the result and moves the job to ``completed``, in one commit."""
        body = _only(message=message)
        if result is not None:
            body["result"] = result
        return self._publish("/complete", body)

    def fail(
        self,
        error: Union[str, BaseException],
        error_type: Optional[str] = None,
        details: Any = None,
    ) -> Dict[str, Any]:
        """Records the error and moves the job to ``failed``, in one commit."""
        return self._publish("/fail", _failure(error, error_type, details))

    def cancel(self, reason: Optional[str] = None) -> Dict[str, Any]:
        """Moves the job to ``cancelled``."""
        return self._publish("/cancel", _only(reason=reason))

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled, as far as the last report or refresh knows."""
        return self.status == "cancelled"

    def refresh_status(self) -> str:
        """Asks the server for the job's status (``running``, ``cancelled``, ...)."""
        self.status = self.client.get_job(self.job_id)["status"]
        return self.status

    def flush(self) -> None:
        """Sends buffered log lines and waits for them.

        :raises JobwireError: lines refused (or not delivered) since the last report or flush
        """
        with self._lock:
            self._send_lines()
            self._raise_log_error()

    def close(self) -> None:
        """Flushes, then refuses further reports and lines (from the start of the flush)."""
        with self._lock:
            with self._buffer:
                if self._closed:
                    return
                self._closed = True
            try:
                self.flush()
            finally:
                self._shut()

    def __enter__(self) -> "JobReporter":
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], _trace: Any) -> bool:
        if error is None:
            self.close()
            return False
        try:
            with self._lock:
                ending = not isinstance(error, self.keep_open_on)
                if ending and self.status not in TERMINAL_STATUSES and not self._closed:
                    self._publish("/fail", _failure(error, _snake(kind.__name__)))
                self.close()
        except JobwireError as report:
            # Ended meanwhile (cancelled, say): there is nothing to fail.
            if report.code != "job_finished":
                _log.warning("could not report job %s as failed: %s", self.job_id, report)
        except Exception as report:  # noqa: BLE001 (a token function's own error, say)
            # The exception leaving the block is what the caller must see.
            _log.warning("could not report job %s as failed: %r", self.job_id, report)
        finally:
            self._shut()
        return False

    def _shut(self) -> None:
        """Closed without sending anything more: no timer tries again."""
        with self._buffer:
            self._closed = True
            self._cancel_timer()

    # -- sending ------------------------------------------------------------------

    def _assert_open(self) -> None:
        if self._closed:
            raise JobwireError("closed", f"The reporter of job {self.job_id} is closed")

    def _publish(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            self._assert_open()
            self._send_lines()
            if path in ("/fail", "/cancel"):
                # Ending the job matters more than lines it could not send: it goes out, and
                # what became of the lines is logged.
                reply = self._send(path, body)
                lost, self._background_error = self._background_error, None
                if lost is not None or self._batches:
                    _log.warning(
                        "log lines of job %s were not sent: %s",
                        self.job_id,
                        lost or self._unsent_error,
                    )
                    self._batches = []
                return reply
            # Lines that could not be sent come before this report: it is not sent after the
            # gap. (Lines the server refused are gone for good: they hold nothing up; they are
            # logged, and raised by the next flush().)
            if self._batches:
                raise self._unsent_error or JobwireError(
                    "network_error", "Buffered log lines have not been sent yet"
                )
            return self._send(path, body)

    def _raise_log_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is None and self._batches:
            error = self._unsent_error
        if error is not None:
            raise error

    def _send(self, path: str, body: Dict[str, Any], key: Optional[str] = None) -> Dict[str, Any]:
        try:
            reply, _ = self.client.request(
                "POST",
                _job_path(self.job_id) + path,
                body,
                idempotency_key=key or uuid.uuid4().hex,
            )
        except JobwireError as error:
            if error.code == "job_finished" and isinstance(error.details, dict):
                self.status = error.details.get("status", self.status)
            raise
        self.status = reply.get("status", self.status)
        return reply

    def _send_lines(self) -> None:
        """Sends the buffered lines, in batches of at most ``log_batch`` lines and 256 KiB.

        A batch keeps its Idempotency-Key until it lands, so one sent again after an
        unanswered try is written once. Batches the server could not be reached for stay,
        in order, in front of later lines, and the timer tries again; the error of lines it
        refused is kept for the next report or :meth:`flush`.
        """
        with self._buffer:
            self._cancel_timer()
            self._unsent_error = None
            self._batch_lines()
        while self._batches:
            key, lines = self._batches[0]
            try:
                self._send("/log", {"lines": lines}, key)
            except JobwireError as error:
                if error.retryable:
                    self._retry_later(error)
                    return
                self._batches.pop(0)
                if error.status == 413 and len(lines) > 1:
                    # Too large: one line may be the cause; the others still go, one by one.
                    self._batches[0:0] = [(uuid.uuid4().hex, [line]) for line in lines]
                else:
                    _log.warning(
                        "%d log line%s of job %s refused and dropped: %s",
                        len(lines),
                        "" if len(lines) == 1 else "s",
                        self.job_id,
                        error,
                    )
                    self._background_error = self._background_error or error
                continue
            except Exception as error:  # noqa: BLE001 (a token function that raised, say)
                self._retry_later(JobwireError("client_error", f"Sending log lines failed: {error!r}"))
                return
            self._batches.pop(0)

    def _batch_lines(self) -> None:
        """Cuts the buffered lines into keyed batches behind those waiting; the buffer's
        lock is held."""
        batch: List[Dict[str, str]] = []
        size = 0
        for line, length in self._lines:
            if batch and (len(batch) >= self.log_batch or size + length > LOG_BATCH_BYTES):
                self._batches.append((uuid.uuid4().hex, batch))
                batch, size = [], 0
            batch.append(line)
            size += length
        if batch:
            self._batches.append((uuid.uuid4().hex, batch))
        self._lines, self._line_bytes = [], 0

    def _retry_later(self, error: JobwireError) -> None:
        with self._buffer:
            self._unsent_error = error
            self._arm_timer()

    def _arm_timer(self) -> None:
        """Starts the flush timer unless it runs; the buffer's lock is held."""
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(self.log_flush, self._flush_in_background)
            self._timer.daemon = True
            self._timer.start()

    def _cancel_timer(self) -> None:
        """Stops the flush timer; the buffer's lock is held."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush_in_background(self) -> None:
        try:
            with self._buffer:
                self._timer = None
                if self._closed:
                    return
            with self._lock:
                # close() may have run meanwhile: what it did not send stays unsent.
                if not self._closed:
                    self._send_lines()
        except Exception as error:  # noqa: BLE001 (a timer thread must not die loudly)
            _log.warning("flushing log lines of job %s failed: %r", self.job_id, error)


# -- helpers ------------------------------------------------------------------------


#: HTTP statuses of the errors a stream reports before it closes: none of them passes on retry.
_STREAM_ERROR_STATUS = {
    "job_gone": 410,
    "job_not_found": 404,
    "forbidden": 403,
    "unauthorized": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "token_revoked": 401,
}


def _as_numbers(value: Any) -> Any:
    """``value`` through JSON with every number as JavaScript holds it (an integer past
    2^53 as the nearest double), so that what was sent and what the server gives back
    compare equal."""

    def number(text: str) -> Union[int, float]:
        whole = int(text)
        return whole if abs(whole) <= 2**53 else float(whole)

    return json.loads(json.dumps(value), parse_int=number)


def _if_unanswered(tries: List[JobwireError]) -> Callable[[JobwireError], None]:
    """An ``on_retry`` that keeps the failed tries that may have been carried out: sent
    without an answer, or answered by a proxy that lost the server's (502, 504)."""

    def keep(error: JobwireError) -> None:
        if (error.status == 0 and error.sent) or error.status in (502, 504):
            tries.append(error)

    return keep


def _job_id(job_id: Union[str, int]) -> str:
    """A job id as the server knows it: text, or a whole number (``123`` is job ``"123"``)."""
    if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id >= 0:
        return str(job_id)
    if not isinstance(job_id, str) or job_id == "":
        raise TypeError(
            'a job id is text such as "build-42" (or a whole number), not %r' % (job_id,)
        )
    return job_id


def _job_path(job_id: Union[str, int]) -> str:
    return "/jobs/" + urllib.parse.quote(_job_id(job_id), safe="")


def _failure(
    error: Union[str, BaseException], error_type: Optional[str] = None, details: Any = None
) -> Dict[str, Any]:
    """The body of a failure report, its message cut to :data:`ERROR_CHARS`."""
    text = str(error) or type(error).__name__
    if len(text) > ERROR_CHARS:
        text = text[:ERROR_CHARS] + "… [truncated]"
    body: Dict[str, Any] = {"error": text}
    if error_type is not None:
        body["error_type"] = error_type
    if details is not None:
        body["details"] = details
    return body


def _only(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _snake(name: str) -> str:
    """``ValueError`` → ``value_error``, ``S3Error`` → ``s3_error``: the form error types take
    (letters, digits and underscores, not starting with a digit)."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"^[0-9_]+", "", re.sub(r"[^a-z0-9_]", "", words.lower())).strip("_") or "general"


def _sse_envelopes(response: http.client.HTTPResponse) -> Iterator[Dict[str, Any]]:
    """The JSON of each SSE message's ``data`` (comments, ``retry`` and ``id`` ignored)."""
    data: List[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield json.loads("\n".join(data))
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line[5:6] == " " else line[5:])
