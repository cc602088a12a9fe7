"""The agent's runtime against a fake control plane on 127.0.0.1: hello and welcome, commands run once,
re-sends answered from the journal, reconnects with backoff, final close codes, malformed frames, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import JsonValue
from runtime_support import (
    AGENT_ID,
    FakeControlPlane,
    FakeExecutors,
    eventually,
    paired_agent,
    running_agent,
)
from vault_support import SECRET

from botmox_agent.executors import CommandFailed
from botmox_agent.runtime import SqliteJournal, StateDir, TunnelEnded
from botmox_protocol import CommandResultFrame, HeartbeatFrame


async def test_hello_welcome_health_metrics_and_status(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url, http_address="127.0.0.1:0")
        async with running_agent(settings) as running:
            await plane.wait_welcomed()
            hello = plane.hello()
            assert hello.agent_id == AGENT_ID
            assert list(hello.capabilities) == ["proxmox.vm.start", "syncthing.status"]
            await eventually(lambda: "agent.connected" in running.event_names())
            assert running.http_port is not None
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}") as client:
                health = await client.get("/healthz")
                assert health.status_code == 200
                assert health.json()["state"] == "connected"
                metrics = (await client.get("/metrics")).text
                assert "botmox_agent_connected 1.0" in metrics
                assert (await client.get("/nope")).status_code == 404
            status = StateDir(settings.state_dir).read_status()
            assert status is not None
            assert status["state"] == "connected"
            # Heartbeats every welcome.heartbeat_interval_s (1 s here).
            await eventually(lambda: any(isinstance(f, HeartbeatFrame) for f in plane.current.frames))
        assert running.task.result() == TunnelEnded(None, "stopped")
        assert running.executors.closed
        assert StateDir(settings.state_dir).read_status()["state"] == "stopped"  # type: ignore[index]


async def test_healthz_is_503_until_welcome(tmp_path: Path) -> None:
    # No server listens: the agent keeps trying and is never welcomed.
    settings = paired_agent(tmp_path, "http://127.0.0.1:9", http_address="127.0.0.1:0")
    async with running_agent(settings) as running:
        await eventually(lambda: running.http_port is not None and len(running.attempts) >= 2)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.http_port}") as client:
            health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "agent.connect_failed" in running.event_names()


async def test_a_command_runs_once_with_ack_progress_and_result(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await eventually(lambda: len(plane.results("cmd-1")) == 1)
            (result,) = plane.results("cmd-1")
            assert result.ok
            assert result.data == {"version": "v1.19.0", "calls": 1}
            frames = [f for f in plane.current.frames if getattr(f, "command_id", None) == "cmd-1"]
            assert [f.type for f in frames] == ["command.ack", "command.progress", "command.result"]
            assert plane.progress("cmd-1")[0].percent == 50
            assert len(running.executors.calls) == 1
            await plane.send_command(
                "cmd-2",
                "proxmox.vm.start",
                {"credential": "secret://proxmox/pve1", "node": "pve1", "vmid": 101},
            )
            await eventually(lambda: len(plane.results("cmd-2")) == 1)
            failed = plane.results("cmd-2")[0]
            assert not failed.ok
            assert failed.error is not None
            assert failed.error.code == "PROXMOX_UNREACHABLE"
        finished = [e for e in running.events() if e["event"] == "command.finished"]
        assert {(e["command_id"], e["kind"], e["outcome"]) for e in finished} == {
            ("cmd-1", "syncthing.status", "succeeded"),
            ("cmd-2", "proxmox.vm.start", "failed"),
        }
        # Params are never logged (the vault reference here; a value elsewhere).
        assert "secret://proxmox/pve1" not in running.log.getvalue()
        journal = SqliteJournal(settings.state_dir / "journal.sqlite3")
        try:
            entry = journal.get("cmd-1")
            assert entry is not None
            assert entry.outcome is not None
            assert entry.outcome.ok
        finally:
            journal.close()


def _too_large() -> JsonValue:
    return "x" * (300 * 1024)


def _crash() -> JsonValue:
    raise RuntimeError(f"https://pve1:8006/?token={SECRET}")


def _bad_code() -> JsonValue:
    raise CommandFailed("not a code", "lower case")


@pytest.mark.parametrize(
    ("answer", "code"),
    [(_too_large, "RESULT_TOO_LARGE"), (_crash, "EXECUTOR_ERROR"), (_bad_code, "INVALID_RESULT")],
)
async def test_an_executor_answer_no_frame_can_carry_is_failed_in_its_place(
    tmp_path: Path, answer: Callable[[], JsonValue], code: str
) -> None:
    executors = FakeExecutors()
    executors.answer = answer
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, executors) as running:
            await plane.wait_welcomed()
            await plane.send_command("odd")
            await eventually(lambda: len(plane.results("odd")) == 1)
        (result,) = plane.results("odd")
        assert result.error is not None
        assert result.error.code == code
        assert SECRET not in result.model_dump_json()
        assert SECRET not in running.log.getvalue()
        finished = [e for e in running.events() if e["event"] == "command.finished"]
        assert finished[0]["code"] == code


async def test_a_resent_command_is_answered_from_the_journal_and_never_runs_twice(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url, http_address="127.0.0.1:0")
        async with running_agent(settings) as running:
            await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await eventually(lambda: len(plane.results("cmd-1")) == 1)
            await plane.drop()
            await plane.wait_welcomed(connections=2)
            await plane.send_command("cmd-1")
            await eventually(lambda: len(plane.results("cmd-1")) == 2)
            first, replay = plane.results("cmd-1")
            assert replay.ok
            assert replay.data == first.data
            assert len(running.executors.calls) == 1
            assert "command.replayed" in running.event_names()
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"http://127.0.0.1:{running.http_port}/metrics")).text
            assert 'botmox_agent_commands_total{kind="syncthing.status",outcome="replayed"} 1.0' in metrics
            assert 'botmox_agent_commands_total{kind="syncthing.status",outcome="succeeded"} 1.0' in metrics
            assert "botmox_agent_reconnects_total 1.0" in metrics


async def test_a_command_finished_while_disconnected_waits_for_the_resend(tmp_path: Path) -> None:
    executors = FakeExecutors(block=True)
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, executors) as running:
            await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await eventually(lambda: len(executors.calls) == 1)
            await plane.drop()
            # Re-sent while still running: ack only, the result follows when it finishes.
            await plane.wait_welcomed(connections=2)
            await plane.send_command("cmd-1")
            await eventually(lambda: len(plane.current.frames) >= 2 and len(plane.acks("cmd-1")) == 2)
            executors.release.set()
            await eventually(lambda: len(plane.results("cmd-1")) == 1)
            assert plane.results("cmd-1")[0] in plane.current.frames
            assert len(running.executors.calls) == 1


async def test_reconnects_back_off_and_reset_at_welcome(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        plane.refuse_next = [1011, 1011]
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            await plane.wait_welcomed()
            assert running.attempts == [0, 1]
            await plane.drop(1001)
            await plane.wait_welcomed(connections=2)
            assert running.attempts == [0, 1, 0]
            state = StateDir(settings.state_dir)
            await eventually(lambda: (state.read_status() or {}).get("state") == "connected")
            status = state.read_status()
            assert status is not None
            assert status["reconnects"] == 3
            assert status["last_close_code"] == 1001


async def test_a_server_that_never_welcomes_is_left_and_retried(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        plane.silent_next = 1
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, open_timeout_s=0.3) as running:
            await plane.wait_welcomed()
            assert plane.attempts == 2
            assert running.attempts == [0]
            assert "agent.no_welcome" in running.event_names()


@pytest.mark.parametrize(("code", "word"), [(4401, "credential"), (4403, "revoked"), (4400, "protocol")])
async def test_final_close_codes_stop_the_agent(tmp_path: Path, code: int, word: str) -> None:
    async with FakeControlPlane() as plane:
        plane.refuse_next = [code]
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            ended = await asyncio.wait_for(asyncio.shield(running.task), 10)
        assert ended.final_close_code == code
        assert word in ended.reason
        assert plane.attempts == 1
        assert running.attempts == []


@pytest.mark.parametrize(("status", "code"), [(401, 4401), (403, 4403)])
async def test_an_http_refusal_of_the_upgrade_is_final(tmp_path: Path, status: int, code: int) -> None:
    async with FakeControlPlane() as plane:
        plane.http_refusal = status
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            ended = await asyncio.wait_for(asyncio.shield(running.task), 10)
        assert ended.final_close_code == code
        assert plane.attempts == 1


async def test_an_http_error_of_the_upgrade_is_retried(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        plane.http_refusal = 502
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            await eventually(lambda: plane.attempts >= 3)
            plane.http_refusal = None
            await plane.wait_welcomed()
            assert running.attempts[:2] == [0, 1]
            assert "agent.connect_refused" in running.event_names()


async def test_a_refused_credential_is_final(tmp_path: Path) -> None:
    async with FakeControlPlane(credential="another-credential-entirely-0123456789") as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            ended = await asyncio.wait_for(asyncio.shield(running.task), 10)
        assert ended.final_close_code == 4401


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "INVALID_JSON"),
        ('{"v": 1, "id": "x1", "type": "ping"}', "UNKNOWN_TYPE"),
        (
            '{"v": 1, "id": "x2", "type": "command", "command_id": "c", "kind": "shell.exec", "params": {},'
            ' "deadline": "2026-12-06T08:05:00Z"}',
            "UNKNOWN_COMMAND_KIND",
        ),
        ("x" * (600 * 1024), "FRAME_TOO_LARGE"),
    ],
)
async def test_a_malformed_frame_gets_an_error_frame_and_the_agent_carries_on(
    tmp_path: Path, raw: str, code: str
) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            connection = await plane.wait_welcomed()
            await connection.ws.send(raw)
            await eventually(lambda: len(connection.peer_errors) == 1)
            assert connection.peer_errors[0].code == code
            await plane.send_command("cmd-after")
            await eventually(lambda: len(plane.results("cmd-after")) == 1)
            assert len(plane.connections) == 1
            assert "frame.refused" in running.event_names()


async def test_a_command_past_its_deadline_is_refused_without_running(tmp_path: Path) -> None:
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings) as running:
            await plane.wait_welcomed()
            await plane.send_command("late", deadline=datetime.now(UTC) - timedelta(seconds=5))
            await eventually(lambda: len(plane.results("late")) == 1)
            result: CommandResultFrame = plane.results("late")[0]
            assert not result.ok
            assert result.error is not None
            assert result.error.code == "DEADLINE_EXCEEDED"
            assert running.executors.calls == []
            assert "command.refused" in running.event_names()


async def test_executors_see_the_deadline_and_a_late_command_is_cut_at_it(tmp_path: Path) -> None:
    executors = FakeExecutors(block=True)
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, executors):
            await plane.wait_welcomed()
            await plane.send_command("slow", deadline=datetime.now(UTC) + timedelta(seconds=2))
            await eventually(lambda: len(plane.results("slow")) == 1)
        (result,) = plane.results("slow")
        assert result.error is not None
        assert result.error.code == "DEADLINE_EXCEEDED"
        # Seen through command_deadline: below the 2 s left, less the executors' answer margin.
        assert 0 <= executors.seconds_left[0] < 2


async def test_sigterm_like_stop_lets_a_running_command_finish_and_closes_1001(tmp_path: Path) -> None:
    executors = FakeExecutors(block=True)
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, executors) as running:
            connection = await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await eventually(lambda: len(executors.calls) == 1)
            running.stop.set()
            await asyncio.sleep(0.05)
            executors.release.set()
            ended = await asyncio.wait_for(asyncio.shield(running.task), 10)
        assert ended.final_close_code is None
        assert len(plane.results("cmd-1")) == 1
        assert plane.results("cmd-1")[0].ok
        assert connection.ws.close_code == 1001


async def test_a_command_still_running_after_the_grace_is_interrupted(tmp_path: Path) -> None:
    executors = FakeExecutors(block=True)
    async with FakeControlPlane() as plane:
        settings = paired_agent(tmp_path, plane.url)
        async with running_agent(settings, executors) as running:
            await plane.wait_welcomed()
            await plane.send_command("cmd-1")
            await eventually(lambda: len(executors.calls) == 1)
            running.stop.set()
            await asyncio.wait_for(asyncio.shield(running.task), 10)
        (result,) = plane.results("cmd-1")
        assert result.error is not None
        assert result.error.code == "INTERRUPTED"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_with_a_private_ca_file(tmp_path: Path, ca: trustme.CA) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with FakeControlPlane(tls=server_tls) as plane:
        assert plane.url.startswith("https://")
        untrusting = paired_agent(tmp_path / "untrusting", plane.url)
        async with running_agent(untrusting) as running:
            await eventually(lambda: len(running.attempts) >= 2)
            assert plane.connections == []
            failures = [e for e in running.events() if e["event"] == "agent.connect_failed"]
            assert failures
            assert "CERTIFICATE_VERIFY_FAILED" in str(failures[0]["detail"])
        trusting = paired_agent(tmp_path / "trusting", plane.url, ca_file=ca_file)
        async with running_agent(trusting):
            await plane.wait_welcomed()
            await plane.send_command("tls-1")
            await eventually(lambda: len(plane.results("tls-1")) == 1)
