"""A real agent process for the tests that kill one: `run_agent` with `FakeExecutors(block=True)` (every
command hangs), settings from the BOTMOX_AGENT_* environment. Started by test_runtime_process.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from runtime_support import FakeExecutors

from botmox_agent.runtime import AgentSettings, RunOptions, run_agent
from botmox_agent.runtime._logging import agent_logger


async def main() -> None:
    executors = FakeExecutors(block=True)
    await run_agent(
        AgentSettings(),
        executors_factory=lambda _settings, _secrets: executors,
        stop=asyncio.Event(),
        log=agent_logger(),
        options=RunOptions(delay=lambda attempt: 0.05),
    )


if __name__ == "__main__":
    asyncio.run(main())
