"""Tests of the Python client against a real jobwire server.

Run by ``tests/client/python_test.ts``, which starts the server and passes
``JOBWIRE_URL`` and ``JOBWIRE_TOKEN`` (a token with the write scope); by hand:

    JOBWIRE_URL=http://127.0.0.1:8080 JOBWIRE_TOKEN=... python3 -m unittest -v test_jobwire
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from jobwire import RETRY_AFTER_MAX, Client, JobwireError, _retry_after

URL = os.environ["JOBWIRE_URL"]
TOKEN = os.environ["JOBWIRE_TOKEN"]


class FaultyProxy:
    """A TCP proxy in front of the server that can lose a reply or cut a stream.

    ``policy(index, request_head)`` decides for each connection: ``None`` forwards it
    whole; ``("drop_reply",)`` forwards the request and closes without the reply;
    ``("cut_after", n)`` forwards ``n`` bytes of the reply, then closes;
    ``("respond", raw)`` answers ``raw`` itself and forwards nothing;
    ``("replace_reply", raw)`` forwards the request and answers ``raw`` instead of the reply;
    ``("delay", seconds)`` forwards it all after a pause.
    """

    def __init__(self, target: str, policy: Callable[[int, bytes], Optional[tuple]]):
        host, port = target.split("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.policy = policy
        self.connections = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(client, index), daemon=True).start()

    def _serve(self, client: socket.socket, index: int) -> None:
        upstream = socket.create_connection(self.target)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            action = self.policy(index, head)
            if action is not None and action[0] == "respond":
                client.sendall(action[1])
                return
            if action is not None and action[0] == "delay":
                time.sleep(action[1])
            upstream.sendall(head)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            if action is not None and action[0] in ("drop_reply", "replace_reply"):
                upstream.recv(65536)  # the reply arrives, and is lost
                if action[0] == "replace_reply":
                    client.sendall(action[1])
                return
            budget = action[1] if action is not None and action[0] == "cut_after" else None
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    return
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                client.sendall(chunk)
                if budget == 0:
                    return
        except OSError:
            return
        finally:
            # shutdown, not only close: the other thread's recv holds the socket open.
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                return
            sink.sendall(chunk)
    except OSError:
        return


def first_matching(request_line: bytes, action: tuple) -> Callable[[int, bytes], Optional[tuple]]:
    """A proxy policy that applies ``action`` to the first request whose first line holds
    ``request_line``; its ``hits`` list the connections it applied to."""
    hits: List[int] = []

    def policy(index: int, head: bytes) -> Optional[tuple]:
        if request_line in head.split(b"\r\n", 1)[0] and not hits:
            hits.append(index)
            return action
        return None

    policy.hits = hits  # type: ignore[attr-defined]
    return policy


def unavailable(retry_after: int) -> bytes:
    """A raw 503 with ``Retry-After``, as the server answers when it cannot take a request."""
    body = json.dumps({"error": {"code": "unavailable", "message": "try again"}}).encode()
    head = (
        f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


GATEWAY_TIMEOUT = (
    b"HTTP/1.1 504 Gateway Time-out\r\nContent-Type: text/html\r\nContent-Length: 9\r\n"
    b"Connection: close\r\n\r\n<html/>\r\n"
)


class Deadline(unittest.TestCase):
    """Fails a test that hangs, instead of hanging the suite."""

    def setUp(self) -> None:
        def expire(_signal: int, _frame: Any) -> None:
            raise TimeoutError("the test took over 30 s")

        signal.signal(signal.SIGALRM, expire)
        signal.alarm(30)
        self.client = Client(URL, token=TOKEN, initial_delay=0.01, max_delay=0.05)

    def tearDown(self) -> None:
        signal.alarm(0)


def silent_server() -> socket.socket:
    """A listener that accepts connections and never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    return silent


@contextlib.contextmanager
def through_proxy(
    policy: Callable[[int, bytes], Optional[tuple]], **options: Any
) -> Iterator[Tuple[Client, FaultyProxy]]:
    """A client (quick retries unless ``options`` say otherwise) whose requests go through a
    :class:`FaultyProxy` with ``policy``."""
    proxy = FaultyProxy(URL, policy)
    try:
        yield Client(proxy.url, token=TOKEN, **{"initial_delay": 0.01, "max_delay": 0.05, **options}), proxy
    finally:
        proxy.close()


def types_of(client: Client, job_id: str) -> List[str]:
    events = client.events(job_id, since=0)["events"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    return [e["type"] for e in events]


class ReporterTest(Deadline):

    def test_reports_land_in_call_order_with_logs_batched(self) -> None:
        job = self.client.create_job(kind="train", metadata={"model": "v3"}, log_flush=5)
        self.assertEqual(job.job["status"], "pending")
        self.assertEqual(job.job["metadata"], {"model": "v3"})
        job.started()
        job.log("loading rows")
        job.log("rows loaded", level="warning", source="stdout")
        reply = job.progress(45, stage="training", message="Epoch 15/20", eta_seconds=180)
        self.assertEqual(reply["status"], "running")
        job.log("last line")
        job.event("training_progress", {"epoch": 15, "loss": 0.0234})
        job.complete({"accuracy": 0.968}, message="done")
        job.close()
        events = self.client.events(job.job_id, since=0)["events"]
        self.assertEqual(
            [(e["type"], e["data"].get("line") or e["data"].get("status")) for e in events],
            [
                ("status", "running"),
                ("log", "loading rows"),
                ("log", "rows loaded"),
                ("progress", None),
                ("log", "last line"),
                ("training_progress", None),
                ("result", None),
                ("status", "completed"),
            ],
        )
        self.assertEqual(events[2]["data"]["level"], "warning")
        self.assertEqual(events[2]["data"]["source"], "stdout")
        self.assertEqual(events[3]["data"]["percentage"], "45%")
        self.assertEqual(events[3]["data"]["stage"], "training")
        self.assertEqual(events[5]["data"], {"epoch": 15, "loss": 0.0234})
        snapshot = self.client.get_job(job.job_id)
        self.assertEqual(snapshot["status"], "completed")
        self.assertEqual(snapshot["result"], {"accuracy": 0.968})
        self.assertEqual(job.status, "completed")
        with self.assertRaises(JobwireError) as refused:
            job.started()
        self.assertEqual(refused.exception.code, "closed")

    def test_log_lines_go_out_on_their_own_after_log_flush(self) -> None:
        job = self.client.create_job(log_flush=0.05)
        job.log("alone")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and types_of(self.client, job.job_id) != ["log"]:
            time.sleep(0.02)
        self.assertEqual(types_of(self.client, job.job_id), ["log"])
        job.close()

    def test_an_exception_leaving_the_block_fails_the_job_and_propagates(self) -> None:
        with self.assertRaises(ValueError):
            with self.client.create_job() as job:
                job.started()
                job.log("about to break")
                raise ValueError("bad input row 7")
        snapshot = self.client.get_job(job.job_id)
        self.assertEqual(snapshot["status"], "failed")
        self.assertEqual(snapshot["error"]["error"], "bad input row 7")
        self.assertEqual(snapshot["error"]["error_type"], "value_error")
        self.assertEqual(types_of(self.client, job.job_id), ["status", "log", "error", "status"])

    def test_an_exception_class_with_digits_keeps_them_in_its_error_type(self) -> None:
        class S3Error(Exception):
            pass

        with self.assertRaises(S3Error):
            with self.client.create_job() as job:
                job.started()
                raise S3Error("bucket gone")
        snapshot = self.client.get_job(job.job_id)
        self.assertEqual(snapshot["status"], "failed")
        self.assertEqual(snapshot["error"]["error_type"], "s3_error")

    def test_a_block_that_finished_its_job_is_left_as_it_ended(self) -> None:
        with self.assertRaises(KeyError):
            with self.client.create_job() as job:
                job.cancel("no longer needed")
                raise KeyError("after the end")
        self.assertEqual(self.client.get_job(job.job_id)["status"], "cancelled")

    def test_refusals_raise_with_the_servers_code_and_are_not_retried(self) -> None:
        with self.assertRaises(JobwireError) as missing:
            self.client.get_job("no-such-job-" + uuid.uuid4().hex)
        self.assertEqual((missing.exception.code, missing.exception.status), ("job_not_found", 404))
        job = self.client.create_job()
        job.cancel()
        with through_proxy(lambda index, head: None) as (through, proxy):
            with self.assertRaises(JobwireError) as finished:
                through.reporter(job.job_id).progress(10)
            self.assertEqual((finished.exception.code, finished.exception.status), ("job_finished", 409))
            self.assertEqual(proxy.connections, 1)
        with self.assertRaises(JobwireError) as invalid:
            job.progress(101)
        self.assertEqual(invalid.exception.code, "validation_error")
        with self.assertRaises(JobwireError) as unauthorized:
            Client(URL, token="not-a-token").get_job(job.job_id)
        self.assertEqual(unauthorized.exception.status, 401)
        with self.assertRaises(JobwireError) as taken:
            self.client.create_job(job.job_id)
        self.assertEqual(taken.exception.code, "job_exists")
        with self.assertRaises(ValueError):
            job.log("x", level="loud")

    def test_a_publish_whose_reply_was_lost_or_cut_is_retried_and_written_once(self) -> None:
        # Lost whole; or cut after the status line and one header, before the body's length,
        # which http.client would otherwise read as an empty reply.
        cut = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n"
        for action in [("drop_reply",), ("replace_reply", cut)]:
            with self.subTest(action=action[0]):
                job = self.client.create_job()
                policy = first_matching(b"/progress", action)
                with through_proxy(policy) as (through, proxy):
                    reply = through.reporter(job.job_id).progress(50)
                    self.assertEqual(reply["sequences"], [1])
                    self.assertTrue(reply["replayed"])
                    self.assertEqual(len(policy.hits), 1)  # type: ignore[attr-defined]
                self.assertEqual(types_of(self.client, job.job_id), ["progress"])

    def test_a_create_whose_reply_was_lost_counts_as_created(self) -> None:
        policy = first_matching(b"POST /jobs ", ("drop_reply",))
        with through_proxy(policy) as (through, proxy):
            job = through.create_job(kind="retried", metadata={"n": 1})
            self.assertEqual(len(policy.hits), 1)  # type: ignore[attr-defined]
        self.assertEqual(self.client.get_job(job.job_id)["kind"], "retried")
        self.assertIsNotNone(job.job)
        self.assertEqual(job.job["metadata"], {"n": 1})  # type: ignore[index]

    def test_an_id_taken_before_a_create_that_was_answered_is_refused(self) -> None:
        taken = self.client.create_job(kind="someone-elses")
        # The first try is answered (503, nothing written): job_exists on the retry is real.
        with through_proxy(first_matching(b"POST /jobs ", ("respond", unavailable(0)))) as (through, proxy):
            with self.assertRaises(JobwireError) as refused:
                through.create_job(taken.job_id, kind="mine")
            self.assertEqual(refused.exception.code, "job_exists")
        # A lost reply with someone else's job under the id: not this call's either.
        with through_proxy(first_matching(b"POST /jobs ", ("drop_reply",))) as (through, proxy):
            with self.assertRaises(JobwireError) as refused:
                through.create_job(taken.job_id, kind="mine")
            self.assertEqual(refused.exception.code, "job_exists")

    def test_a_lost_create_reply_with_an_older_job_under_the_id_is_refused(self) -> None:
        older = self.client.create_job(kind="nightly")
        older.started()
        older.complete()
        with through_proxy(first_matching(b"POST /jobs ", ("drop_reply",))) as (through, proxy):
            with self.assertRaises(JobwireError) as refused:
                through.create_job(older.job_id, kind="nightly")
            self.assertEqual(refused.exception.code, "job_exists")

    def test_a_lost_create_reply_is_recognised_whatever_json_makes_of_the_metadata(self) -> None:
        metadata = {"shape": (3, 4), 1: "one", "big": 2**53 + 1, "bigger": 1234567890123456789}
        with through_proxy(first_matching(b"POST /jobs ", ("drop_reply",))) as (through, proxy):
            job = through.create_job(kind="shaped", metadata=metadata)
        self.assertEqual(job.job["metadata"]["shape"], [3, 4])  # type: ignore[index]

    def test_a_create_a_proxy_timed_out_on_counts_as_created(self) -> None:
        with through_proxy(first_matching(b"POST /jobs ", ("replace_reply", GATEWAY_TIMEOUT))) as (through, _):
            job = through.create_job(kind="slow-gateway")
        self.assertEqual(self.client.get_job(job.job_id)["kind"], "slow-gateway")

    def test_a_delete_whose_reply_was_lost_succeeds(self) -> None:
        job = self.client.create_job()
        with through_proxy(first_matching(b"DELETE /jobs/", ("drop_reply",))) as (through, _):
            through.delete_job(job.job_id)
        with self.assertRaises(JobwireError) as gone:
            self.client.get_job(job.job_id)
        self.assertEqual(gone.exception.code, "job_gone")
        with self.assertRaises(JobwireError) as again:
            self.client.delete_job(job.job_id)
        self.assertEqual(again.exception.code, "job_gone")

    def test_retry_after_is_waited_out_whatever_max_delay_says(self) -> None:
        job = self.client.create_job()
        with through_proxy(first_matching(b"/progress", ("respond", unavailable(1)))) as (through, proxy):
            started = time.monotonic()
            through.reporter(job.job_id).progress(5)
            self.assertGreaterEqual(time.monotonic() - started, 0.95)
        self.assertEqual(types_of(self.client, job.job_id), ["progress"])

    def test_a_token_given_with_its_bearer_word_is_taken(self) -> None:
        job = self.client.create_job(kind="bearer")
        pasted = Client(URL, token=f"Bearer {TOKEN}")
        self.assertEqual(pasted.get_job(job.job_id)["id"], job.job_id)

    def test_wait_outlasts_a_server_out_of_reach_until_its_timeout(self) -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        client = Client(f"http://127.0.0.1:{port}", timeout=0.5, retries=1, initial_delay=0.01)
        started = time.monotonic()
        with self.assertRaises(JobwireError) as waited:
            client.wait("x", timeout=2.5)
        # Asked again past the request's own retries, as a restart would need, then told
        # the timeout passed (not that one try found no server).
        self.assertEqual(waited.exception.code, "timeout")
        self.assertGreater(time.monotonic() - started, 1.5)
        self.assertLess(time.monotonic() - started, 6)

    def test_a_server_that_never_answers_is_tried_retries_plus_one_times(self) -> None:
        silent = silent_server()
        accepted: List[socket.socket] = []

        def accept() -> None:
            while True:
                try:
                    accepted.append(silent.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        try:
            client = Client(
                f"http://127.0.0.1:{silent.getsockname()[1]}",
                timeout=0.2,
                retries=2,
                initial_delay=0.01,
            )
            with self.assertRaises(JobwireError) as gave_up:
                client.get_job("x")
            self.assertEqual(gave_up.exception.code, "timeout")
            self.assertEqual(len(accepted), 3)
            # wait() keeps its own deadline, whatever one try may take.
            started = time.monotonic()
            with self.assertRaises(JobwireError) as waited:
                client.wait("x", timeout=1)
            self.assertEqual(waited.exception.code, "timeout")
            self.assertLess(time.monotonic() - started, 3)
        finally:
            silent.close()
            for sock in accepted:
                sock.close()

    def test_a_huge_exception_message_still_fails_the_job(self) -> None:
        with self.assertRaises(RuntimeError):
            with self.client.create_job() as job:
                job.started()
                raise RuntimeError("x" * 70_000)
        snapshot = self.client.get_job(job.job_id)
        self.assertEqual(snapshot["status"], "failed")
        self.assertTrue(snapshot["error"]["error"].endswith("[truncated]"))
        self.assertEqual(snapshot["error"]["error_type"], "runtime_error")

    def test_log_batches_stay_under_the_body_limit_and_a_refused_line_is_raised_by_flush(self) -> None:
        job = self.client.create_job(log_flush=60)
        job.started()
        for n in range(100):
            job.log(f"{n:03d} " + "y" * 20_000)
        job.progress(10)
        lines = [e["data"]["line"][:3] for e in self.client.events(job.job_id, since=1)["events"][:-1]]
        self.assertEqual(lines, [f"{n:03d}" for n in range(100)])
        # One line over the server's event size limit among good ones.
        job.log("before")
        job.log("z" * 70_000)
        job.log("after")
        # The refused line is gone for good: it holds up no report, and flush() raises it once.
        with self.assertLogs("jobwire", "WARNING") as logged:
            job.progress(20)
        self.assertIn("refused and dropped", logged.output[0])
        with self.assertRaises(JobwireError) as refused:
            job.flush()
        self.assertEqual(refused.exception.status, 413)
        job.flush()
        events = self.client.events(job.job_id, since=102)["events"]
        self.assertEqual(
            [(e["type"], e["data"].get("line", e["data"].get("progress"))) for e in events],
            [("log", "before"), ("log", "after"), ("progress", 20)],
        )
        job.close()

    def test_fail_and_cancel_go_out_even_after_a_refused_line(self) -> None:
        for end in ("fail", "cancel"):
            job = self.client.create_job(log_flush=60)
            job.started()
            job.log("z" * 70_000)
            getattr(job, end)("stopped")
            self.assertEqual(
                self.client.get_job(job.job_id)["status"], "failed" if end == "fail" else "cancelled"
            )

    def test_lines_the_server_could_not_take_yet_are_kept_and_sent_first_later(self) -> None:
        job = self.client.create_job()
        with through_proxy(first_matching(b"/log", ("respond", unavailable(0))), retries=0) as (through, _):
            reporter = through.reporter(job.job_id, log_flush=60)
            reporter.log("kept")
            with self.assertRaises(JobwireError) as unavailable_now:
                reporter.flush()
            self.assertEqual(unavailable_now.exception.status, 503)
            reporter.progress(5)
        self.assertEqual(types_of(self.client, job.job_id), ["log", "progress"])

    def test_a_log_batch_whose_reply_was_lost_is_written_once(self) -> None:
        job = self.client.create_job()
        with through_proxy(first_matching(b"/log", ("drop_reply",)), retries=0) as (through, _):
            reporter = through.reporter(job.job_id, log_flush=60)
            reporter.log("a")
            reporter.log("b")
            with self.assertRaises(JobwireError):
                reporter.flush()
            reporter.progress(5)
        events = self.client.events(job.job_id, since=0)["events"]
        self.assertEqual([e["data"].get("line") for e in events], ["a", "b", None])

    def test_while_the_server_cannot_be_reached_log_does_not_send(self) -> None:
        job = self.client.create_job()
        refuse_logs = lambda index, head: ("respond", unavailable(0)) if b"/log" in head.split(b"\r\n")[0] else None
        with through_proxy(refuse_logs, retries=1) as (through, proxy):
            reporter = through.reporter(job.job_id, log_flush=60, log_batch=2)
            reporter.log("a")
            reporter.log("b")  # a full buffer: sent at once, and refused
            tried = proxy.connections
            self.assertEqual(tried, 2)
            reporter.log("c")
            reporter.log("d")  # full again, but the timer retries: nothing sent here
            self.assertEqual(proxy.connections, tried)
            reporter._shut()

    def test_a_token_function_that_raises_in_the_timer_keeps_the_lines(self) -> None:
        job = self.client.create_job()
        calls: List[int] = []

        def token() -> str:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("vault unreachable")
            return TOKEN

        escaped: List[BaseException] = []
        hook = threading.excepthook
        threading.excepthook = lambda args: escaped.append(args.exc_value)  # type: ignore[assignment]
        try:
            reporter = Client(URL, token=token).reporter(job.job_id, log_flush=0.05)
            reporter.log("kept through a failure")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and types_of(self.client, job.job_id) != ["log"]:
                time.sleep(0.05)
        finally:
            threading.excepthook = hook
        self.assertEqual(types_of(self.client, job.job_id), ["log"])
        self.assertEqual(escaped, [])
        reporter.close()

    def test_a_failed_failure_report_still_closes_the_reporter(self) -> None:
        job = self.client.create_job()
        refuse_all = lambda index, head: ("respond", unavailable(0))
        with through_proxy(refuse_all, retries=0) as (through, proxy):
            with self.assertRaises(ValueError):
                with through.reporter(job.job_id, log_flush=0.05) as reporter:
                    reporter.log("x")
                    raise ValueError("broken")
            tried = proxy.connections
            time.sleep(0.3)
            self.assertEqual(proxy.connections, tried)  # no timer tries again
        with self.assertRaises(JobwireError) as closed:
            reporter.log("y")
        self.assertEqual(closed.exception.code, "closed")

    def test_a_line_logged_while_close_flushes_is_refused_not_lost(self) -> None:
        job = self.client.create_job()
        with through_proxy(first_matching(b"/log", ("delay", 0.5))) as (through, _):
            reporter = through.reporter(job.job_id, log_flush=60)
            reporter.log("a")
            closing = threading.Thread(target=reporter.close)
            closing.start()
            time.sleep(0.1)  # close() is waiting for the slow reply
            with self.assertRaises(JobwireError) as refused:
                reporter.log("late")
            self.assertEqual(refused.exception.code, "closed")
            closing.join()
        self.assertEqual([e["data"]["line"] for e in self.client.events(job.job_id, since=0)["events"]], ["a"])

    def test_log_does_not_wait_for_the_timers_retries(self) -> None:
        job = self.client.create_job()
        refuse_logs = lambda index, head: ("respond", unavailable(1)) if b"/log" in head.split(b"\r\n")[0] else None
        with through_proxy(refuse_logs, retries=2) as (through, proxy):
            reporter = through.reporter(job.job_id, log_flush=0.05, log_batch=1)
            with self.assertRaises(JobwireError):
                reporter.log("a")  # a full buffer, sent at once: its tries fail
                reporter.flush()
            # The timer now retries, holding the send lock for seconds between tries.
            tried = proxy.connections
            while proxy.connections == tried:
                time.sleep(0.01)
            logging_done = threading.Event()
            threading.Thread(target=lambda: (reporter.log("b"), logging_done.set()), daemon=True).start()
            self.assertTrue(logging_done.wait(1.0), "log() waited for the timer's retries")
            reporter._shut()

    def test_a_token_function_that_raises_at_exit_does_not_hide_the_blocks_exception(self) -> None:
        job = self.client.create_job()
        calls: List[int] = []

        def token() -> str:
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("token store unavailable")
            return TOKEN

        with self.assertRaises(ValueError):
            with Client(URL, token=token).reporter(job.job_id) as reporter:
                reporter.started()
                raise ValueError("the real problem")

    def test_a_job_cancelled_elsewhere_is_told_apart_and_not_failed_at_exit(self) -> None:
        warnings: List[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = warnings.append  # type: ignore[method-assign]
        logging.getLogger("jobwire").addHandler(handler)
        try:
            with self.assertRaises(JobwireError) as finished:
                with self.client.create_job() as job:
                    job.started()
                    self.assertEqual(job.refresh_status(), "running")
                    self.client.request("POST", f"/jobs/{job.job_id}/cancel", {"reason": "user"})
                    self.assertEqual(job.refresh_status(), "cancelled")
                    job.status = "running"  # as a worker that has not asked would think
                    job.progress(50)
        finally:
            logging.getLogger("jobwire").removeHandler(handler)
        self.assertEqual(finished.exception.code, "job_finished")
        self.assertEqual(finished.exception.details, {"status": "cancelled"})
        self.assertTrue(job.cancelled)
        self.assertEqual(self.client.get_job(job.job_id)["status"], "cancelled")
        self.assertEqual([r.getMessage() for r in warnings], [])

    def test_an_exception_of_keep_open_on_leaves_the_job_for_the_next_attempt(self) -> None:
        class RetryLater(Exception):
            pass

        job = self.client.create_job()
        with self.assertRaises(RetryLater):
            with self.client.reporter(job.job_id, keep_open_on=(RetryLater,)) as attempt:
                attempt.started()
                attempt.log("first attempt")
                raise RetryLater()
        self.assertEqual(self.client.get_job(job.job_id)["status"], "running")
        with self.client.reporter(job.job_id) as attempt:
            attempt.complete({"attempts": 2})
        self.assertEqual(types_of(self.client, job.job_id), ["status", "log", "result", "status"])

    def test_log_levels_take_any_case_and_the_aliases_the_server_takes(self) -> None:
        job = self.client.create_job(log_flush=60)
        for level in ("WARN", "critical", "Fatal", "Info", "trace"):
            job.log(level, level=level)
        job.close()
        events = self.client.events(job.job_id, since=0)["events"]
        self.assertEqual([e["data"]["level"] for e in events], ["warning", "error", "error", "info", "debug"])
        with self.assertRaises(ValueError):
            self.client.reporter(job.job_id).log("x", level="loud")

    def test_wait_with_no_time_left_still_looks_once(self) -> None:
        job = self.client.create_job()
        job.cancel()
        self.assertEqual(self.client.wait(job.job_id, timeout=0)["status"], "cancelled")
        running = self.client.create_job()
        running.started()
        with self.assertRaises(JobwireError) as waited:
            self.client.wait(running.job_id, timeout=0)
        self.assertEqual(waited.exception.code, "timeout")

    def test_lines_refused_for_another_reason_are_not_resent_one_by_one(self) -> None:
        job = self.client.create_job()
        job.cancel()
        with through_proxy(lambda index, head: None) as (through, proxy):
            late = through.reporter(job.job_id, log_flush=60)
            for n in range(20):
                late.log(f"line {n}")
            with self.assertRaises(JobwireError) as finished:
                late.flush()
            self.assertEqual(finished.exception.code, "job_finished")
            self.assertEqual(proxy.connections, 1)

    def test_retry_after_is_bounded_and_must_be_a_number(self) -> None:
        self.assertEqual(_retry_after("2"), 2.0)
        self.assertEqual(_retry_after("3600"), RETRY_AFTER_MAX)
        for bad in ("inf", "nan", "-inf", "soon", None):
            self.assertIsNone(_retry_after(bad), bad)
        self.assertEqual(_retry_after("-5"), 0.0)

    def test_a_block_left_normally_sends_its_buffered_lines(self) -> None:
        with self.client.create_job(log_flush=60) as job:
            job.log("kept in the buffer")
        self.assertEqual(types_of(self.client, job.job_id), ["log"])


class WatchTest(Deadline):

    def produce(self, job_id: str, steps: int, pause: float = 0.02) -> threading.Thread:
        def run() -> None:
            job = self.client.reporter(job_id)
            job.started()
            for step in range(1, steps + 1):
                time.sleep(pause)
                job.log(f"step {step}")
                job.flush()
            job.complete({"steps": steps})

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def test_follows_a_live_job_to_its_end_exactly_once_in_order(self) -> None:
        job = self.client.create_job()
        producer = self.produce(job.job_id, 20)
        seen = list(self.client.watch(job.job_id, since=0))
        producer.join()
        self.assertEqual([e["sequence"] for e in seen], list(range(1, 24)))
        self.assertEqual(seen[-1]["data"]["status"], "completed")
        self.assertEqual(seen[1]["data"]["line"], "step 1")

    def test_a_job_id_given_as_a_whole_number_is_that_job(self) -> None:
        number = uuid.uuid4().int % 10**12
        self.assertEqual(self.client.create_job(id=number).job_id, str(number))
        self.produce(number, 2, pause=0).join()
        self.assertEqual(self.client.get_job(number)["status"], "completed")
        seen = list(self.client.watch(number, since=0))
        self.assertEqual([e["sequence"] for e in seen], list(range(1, 6)))
        self.assertEqual({e["job_id"] for e in seen}, {str(number)})
        for bad in ("", 1.5, -3, None, True):
            with self.assertRaises(TypeError):
                self.client.get_job(bad)  # type: ignore[arg-type]

    def test_resumes_after_since_and_finishes_at_once_on_an_ended_job(self) -> None:
        job = self.client.create_job()
        self.produce(job.job_id, 5, pause=0).join()
        seen = list(self.client.watch(job.job_id, since=3))
        self.assertEqual([e["sequence"] for e in seen], [4, 5, 6, 7, 8])
        self.assertEqual(list(self.client.watch(job.job_id, since=8)), [])

    def test_reconnects_after_a_cut_stream_and_loses_nothing(self) -> None:
        job = self.client.create_job()
        streams: List[int] = []

        def cut_first_two_streams(index: int, head: bytes):
            if b"text/event-stream" in head.lower() and len(streams) < 2:
                streams.append(index)
                return ("cut_after", 1500)
            return None

        with through_proxy(cut_first_two_streams) as (through, proxy):
            producer = self.produce(job.job_id, 40, pause=0.005)
            seen = list(through.watch(job.job_id, since=0))
            producer.join()
        self.assertEqual(len(streams), 2)
        self.assertEqual([e["sequence"] for e in seen], list(range(1, 44)))

    def test_session_messages_on_request_and_the_replay_window_without_since(self) -> None:
        job = self.client.create_job()
        self.produce(job.job_id, 2, pause=0).join()
        seen = list(self.client.watch(job.job_id, include_session=True))
        self.assertEqual(seen[0]["type"], "connection")
        self.assertIsNone(seen[0]["sequence"])
        self.assertEqual(seen[0]["data"]["job"]["status"], "completed")
        self.assertEqual([e["sequence"] for e in seen[1:]], [1, 2, 3, 4, 5])

    def test_a_deleted_or_unknown_job_ends_the_watch_with_its_error(self) -> None:
        with self.assertRaises(JobwireError) as unknown:
            list(self.client.watch("no-such-job-" + uuid.uuid4().hex))
        self.assertEqual(unknown.exception.code, "job_not_found")
        job = self.client.create_job()
        job.started()
        errors: List[JobwireError] = []
        seen: List[int] = []

        def follow() -> None:
            try:
                for event in self.client.watch(job.job_id, since=0):
                    seen.append(event["sequence"])
            except JobwireError as error:
                errors.append(error)

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.delete_job(job.job_id)
        watcher.join(10)
        self.assertFalse(watcher.is_alive())
        self.assertEqual(seen, [1])
        self.assertEqual(len(errors), 1)
        self.assertIn(errors[0].code, ("job_gone", "job_not_found"))

    def test_wait_returns_the_final_snapshot(self) -> None:
        job = self.client.create_job()
        producer = self.produce(job.job_id, 3, pause=0.1)
        snapshot = self.client.wait(job.job_id, timeout=30)
        producer.join()
        self.assertEqual(snapshot["status"], "completed")
        self.assertEqual(snapshot["result"], {"steps": 3})
        pending = self.client.create_job()
        with self.assertRaises(JobwireError) as waited:
            self.client.wait(pending.job_id, timeout=1)
        self.assertEqual(waited.exception.code, "timeout")


class ScriptedServer:
    """A stand-in for the server, for the paths of ``watch`` a real one rarely takes: each
    SSE connection gets the next script (the last repeats), then its stream ends; pages of
    history come from ``events``, and the ``since`` of each page asked for is kept."""

    def __init__(self, scripts: List[List[Dict[str, Any]]], events: List[Dict[str, Any]]):
        self.scripts = scripts
        self.events = events
        self.streams = 0
        self.pages: List[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if "text/event-stream" in self.headers.get("Accept", ""):
                    script = outer.scripts[min(outer.streams, len(outer.scripts) - 1)]
                    outer.streams += 1
                    body = "".join(f"data: {json.dumps(m)}\n\n" for m in script).encode()
                    kind = "text/event-stream"
                else:
                    since = int(query.get("since", "0"))
                    outer.pages.append(since)
                    page = [e for e in outer.events if e["sequence"] > since]
                    page = page[: int(query.get("limit", "1000"))]
                    body = json.dumps({"events": page, "truncated": False}).encode()
                    kind = "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def connected(status: str, last_sequence: int, created_at: str = "t0", **replay: Any) -> Dict[str, Any]:
    job = {"status": status, "last_sequence": last_sequence, "created_at": created_at}
    return {"type": "connection", "job_id": "j", "sequence": None, "data": {"job": job, "replay": replay}}


def logged(sequence: int) -> Dict[str, Any]:
    return {"type": "log", "job_id": "j", "sequence": sequence, "data": {"line": str(sequence)}}


def ended(sequence: int) -> Dict[str, Any]:
    return {"type": "status", "job_id": "j", "sequence": sequence, "data": {"status": "completed"}}


def heartbeat(last_sequence: int) -> Dict[str, Any]:
    return {"type": "heartbeat", "job_id": "j", "sequence": None, "data": {"last_sequence": last_sequence}}


class WatchEdgeTest(Deadline):
    def watch(self, server: ScriptedServer, **options: Any) -> List[int]:
        client = Client(server.url, initial_delay=0.01, max_delay=0.05)
        try:
            return [e["sequence"] for e in client.watch("j", **options)]
        finally:
            server.close()

    def test_a_repeated_event_is_dropped_and_a_skipped_one_fetched_first(self) -> None:
        history = [logged(1), logged(2), logged(3), logged(4), ended(5)]
        server = ScriptedServer(
            [[connected("running", 2), logged(1), logged(2), logged(2), logged(4), ended(5)]], history
        )
        self.assertEqual(self.watch(server, since=0), [1, 2, 3, 4, 5])
        self.assertEqual(server.pages, [2])

    def test_a_heartbeat_ahead_of_the_stream_is_caught_up_from_the_pages(self) -> None:
        # The stream ends after the heartbeat; the next one has no events left to send.
        history = [logged(1), logged(2), ended(3)]
        server = ScriptedServer(
            [[connected("running", 1), logged(1), heartbeat(3)], [connected("completed", 3)]], history
        )
        self.assertEqual(self.watch(server, since=0, max_attempts=2), [1, 2, 3])
        self.assertEqual(server.pages, [1])

    def test_it_stops_at_the_end_of_the_job_even_if_the_stream_goes_on(self) -> None:
        server = ScriptedServer([[connected("running", 1), logged(1), ended(2), heartbeat(2)]], [])
        client = Client(server.url)
        try:
            seen = [(e["type"], e["sequence"]) for e in client.watch("j", since=0, include_session=True)]
        finally:
            server.close()
        self.assertEqual(seen, [("connection", None), ("log", 1), ("status", 2)])

    def test_purged_events_are_not_asked_for(self) -> None:
        script = [connected("running", 6, truncated=True, first_available=5, count=2, **{"from": 5})]
        server = ScriptedServer([script + [logged(5), ended(6)]], [])
        self.assertEqual(self.watch(server, since=0), [5, 6])
        self.assertEqual(server.pages, [])

    def test_an_ended_job_with_an_empty_replay_window_ends_the_watch_at_once(self) -> None:
        server = ScriptedServer([[connected("completed", 7, count=0, **{"from": None})]], [])
        self.assertEqual(self.watch(server), [])
        self.assertEqual(server.streams, 1)

    def test_without_since_it_resumes_after_the_replay_window(self) -> None:
        first = [connected("running", 5, count=2, **{"from": 4}), logged(4)]
        second = [connected("running", 5, count=1, **{"from": 5}), logged(5), ended(6)]
        server = ScriptedServer([first, second], [])
        self.assertEqual(self.watch(server), [4, 5, 6])

    def test_a_since_beyond_the_job_starts_where_the_server_says(self) -> None:
        script = [connected("running", 2, truncated=True, count=0, first_available=1), logged(3), ended(4)]
        server = ScriptedServer([script], [])
        self.assertEqual(self.watch(server, since=5, max_attempts=1), [3, 4])

    def test_a_job_made_again_under_its_id_ends_the_watch(self) -> None:
        first = [connected("running", 1, created_at="t0"), logged(1)]
        second = [connected("running", 0, created_at="t1", count=0)]
        server = ScriptedServer([first, second], [])
        with self.assertRaises(JobwireError) as gone:
            self.watch(server, since=0)
        self.assertEqual(gone.exception.code, "job_gone")
        self.assertEqual(server.streams, 2)

    def test_an_error_the_stream_reports_is_raised_without_reconnecting(self) -> None:
        error = {"type": "error", "job_id": "j", "sequence": None, "data": {"code": "job_gone", "error": "deleted"}}
        server = ScriptedServer([[connected("running", 1), logged(1), error]], [])
        with self.assertRaises(JobwireError) as gone:
            self.watch(server, since=0)
        self.assertEqual((gone.exception.code, gone.exception.status), ("job_gone", 410))
        self.assertEqual(server.streams, 1)

    def test_streams_that_end_before_any_event_count_toward_max_attempts(self) -> None:
        server = ScriptedServer([[connected("running", 0, count=0)]], [])
        with self.assertRaises(JobwireError):
            self.watch(server, since=0, max_attempts=3)
        self.assertEqual(server.streams, 4)


if __name__ == "__main__":
    unittest.main()
