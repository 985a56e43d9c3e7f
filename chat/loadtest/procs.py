"""``--procs``: workers in child processes (``python -m chat.loadtest.procs``), each with its own event loop.

Parent and child exchange pickled messages over the child's stdin and stdout,
each framed by an 8-byte length. Pickle is safe here: both ends are this
program, talking over a pipe nobody else holds. The child's stray output (a
warning, a print) goes to stderr, so it can never corrupt the stream.

Parent -> child: a :class:`WorkerSpec`, then ``("send", go_ns)`` and ``("finish",)``.
Child -> parent: :class:`Tick` every second, :class:`Ready`, ``("sent",)``, then the :class:`WorkerResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from chat.loadtest.limits import raise_open_files_limit
from chat.loadtest.worker import Ready, Tick, Worker, WorkerResult, WorkerSpec

_LENGTH = struct.Struct("!Q")


class WorkerDied(Exception):
    """A child process exited before it answered."""


def _frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


async def _read_message(reader: asyncio.StreamReader) -> Any:
    header = await reader.readexactly(_LENGTH.size)
    (length,) = _LENGTH.unpack(header)
    return pickle.loads(await reader.readexactly(length))


class RemoteWorker:
    """The parent's handle on a child process; the same three steps as :class:`Worker`."""

    def __init__(self, spec: WorkerSpec, on_tick: Callable[[Tick], None]) -> None:
        self.spec = spec
        self.on_tick = on_tick
        self.proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._answers: asyncio.Queue[object] = asyncio.Queue()

    async def prepare(self) -> Ready:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chat.loadtest.procs",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._pump = asyncio.create_task(self._read_child())
        self._write(self.spec)
        answer = await self._answer()
        assert isinstance(answer, Ready), answer
        return answer

    async def send(self, go_ns: int) -> None:
        self._write(("send", go_ns))
        answer = await self._answer()
        assert answer == ("sent",), answer

    async def finish(self) -> WorkerResult:
        self._write(("finish",))
        answer = await self._answer()
        assert isinstance(answer, WorkerResult), answer
        assert self.proc is not None
        await self.proc.wait()
        if self._pump is not None:
            await self._pump
        return answer

    async def kill(self) -> None:
        """Stop the child at once (the run is being abandoned)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    def _write(self, message: object) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(_frame(message))

    async def _answer(self) -> object:
        answer = await self._answers.get()
        if isinstance(answer, WorkerDied):
            raise answer
        return answer

    async def _read_child(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            while True:
                message = await _read_message(self.proc.stdout)
                if isinstance(message, Tick):
                    self.on_tick(message)
                else:
                    self._answers.put_nowait(message)
        except asyncio.IncompleteReadError:
            code = await self.proc.wait()
            self._answers.put_nowait(WorkerDied(f"load process {self.spec.proc} exited with {code}"))


async def _child(commands: asyncio.StreamReader, out: BinaryIO) -> None:
    def send(message: object) -> None:
        # Blocking writes: ticks are small and the parent reads all the time.
        out.write(_frame(message))
        out.flush()

    spec = await _read_message(commands)
    assert isinstance(spec, WorkerSpec)
    worker = Worker(spec, send)
    send(await worker.prepare())
    command = await _read_message(commands)
    if command[0] == "send":
        await worker.send(command[1])
        send(("sent",))
        command = await _read_message(commands)
    send(await worker.finish())


async def _child_main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    # Keep fd 1 for the message stream alone; anything printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        await _child(commands, out)
    finally:
        out.close()


def main() -> int:
    raise_open_files_limit()
    try:
        asyncio.run(_child_main())
    except asyncio.IncompleteReadError:
        return 1  # the parent went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
