"""Tests of the Python client against a real jobwire server.

Run by ``tests/client/python_test.ts``, which starts the server and passes
``JOBWIRE_URL`` and ``JOBWIRE_TOKEN`` (a token with the write scope); by hand:

    JOBWIRE_URL=http://127.0.0.1:8080 JOBWIRE_TOKEN=... python3 -m unittest -v test_jobwire
"""

from __future__ import annotations

import os
import socket
import threading
import time
import unittest
import uuid
from typing import Callable, List, Optional

from jobwire import Client, JobwireError

URL = os.environ["JOBWIRE_URL"]
TOKEN = os.environ["JOBWIRE_TOKEN"]


class FaultyProxy:
    """A TCP proxy in front of the server that can lose a reply or cut a stream.

    ``policy(index, request_head)`` decides for each connection: ``None`` forwards it
    whole; ``("drop_reply",)`` forwards the request and closes without the reply;
    ``("cut_after", n)`` forwards ``n`` bytes of the reply, then closes.
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
            upstream.sendall(head)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            if action is not None and action[0] == "drop_reply":
                upstream.recv(65536)  # the reply arrives, and is lost
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


def types_of(client: Client, job_id: str) -> List[str]:
    events = client.events(job_id, since=0)["events"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    return [e["type"] for e in events]


class ReporterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = Client(URL, token=TOKEN, initial_delay=0.01, max_delay=0.05)

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
        proxy = FaultyProxy(URL, lambda index, head: None)
        try:
            late = Client(proxy.url, token=TOKEN).reporter(job.job_id)
            with self.assertRaises(JobwireError) as finished:
                late.progress(10)
            self.assertEqual((finished.exception.code, finished.exception.status), ("job_finished", 409))
            self.assertEqual(proxy.connections, 1)
        finally:
            proxy.close()
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

    def test_a_publish_whose_reply_was_lost_is_retried_and_written_once(self) -> None:
        job = self.client.create_job()
        lost: List[int] = []

        def lose_first_progress_reply(index: int, head: bytes):
            if b"/progress" in head.split(b"\r\n", 1)[0] and not lost:
                lost.append(index)
                return ("drop_reply",)
            return None

        proxy = FaultyProxy(URL, lose_first_progress_reply)
        try:
            through = Client(proxy.url, token=TOKEN, initial_delay=0.01, max_delay=0.05)
            reply = through.reporter(job.job_id).progress(50)
            self.assertEqual(reply["sequences"], [1])
            self.assertTrue(reply["replayed"])
            self.assertEqual(len(lost), 1)
        finally:
            proxy.close()
        self.assertEqual(types_of(self.client, job.job_id), ["progress"])

    def test_a_create_whose_reply_was_lost_counts_as_created(self) -> None:
        lost: List[int] = []

        def lose_first_create_reply(index: int, head: bytes):
            if head.startswith(b"POST /jobs ") and not lost:
                lost.append(index)
                return ("drop_reply",)
            return None

        proxy = FaultyProxy(URL, lose_first_create_reply)
        try:
            through = Client(proxy.url, token=TOKEN, initial_delay=0.01, max_delay=0.05)
            job = through.create_job(kind="retried")
            self.assertEqual(len(lost), 1)
        finally:
            proxy.close()
        self.assertEqual(self.client.get_job(job.job_id)["kind"], "retried")

    def test_a_server_that_never_answers_gives_up_after_the_retries(self) -> None:
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        try:
            client = Client(
                f"http://127.0.0.1:{silent.getsockname()[1]}",
                timeout=0.1,
                retries=2,
                initial_delay=0.01,
            )
            started = time.monotonic()
            with self.assertRaises(JobwireError) as gave_up:
                client.get_job("x")
            self.assertEqual(gave_up.exception.code, "timeout")
            self.assertLess(time.monotonic() - started, 5)
        finally:
            silent.close()


class WatchTest(unittest.TestCase):
    def setUp(self) -> None:
        self.client = Client(URL, token=TOKEN, initial_delay=0.01, max_delay=0.05)

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

        proxy = FaultyProxy(URL, cut_first_two_streams)
        try:
            through = Client(proxy.url, token=TOKEN, initial_delay=0.01, max_delay=0.05)
            producer = self.produce(job.job_id, 40, pause=0.005)
            seen = list(through.watch(job.job_id, since=0))
            producer.join()
        finally:
            proxy.close()
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


if __name__ == "__main__":
    unittest.main()
