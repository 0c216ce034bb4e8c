"""Answer latency of the app with 1 and with many sessions asking at once (issue 19, item 6).

Starts `xvision ui` on a free port of 127.0.0.1 (loopback only: nothing else is contacted) and
talks to it as browsers do, over Streamlit's own websocket protocol (`/_stcore/stream`, the
protobuf messages of `streamlit.proto`), without a browser: the numbers are the server's, not
a headless browser's rendering. Every level of concurrency asks --total questions of the same mix
(alternately one the generator writes and one composed from the records; other questions at each
level), dealt round-robin to its sessions in conversations of the same length at every level (--total / the largest level, each in
a fresh session: the page draws the conversation's last questions again at each question); all sessions of a
level start together. An answer's latency runs from sending the
question to the end of the page's script run (the answer and its citations drawn); the time to
the answer's first text is kept too.

Where the time goes: each level also reports its wall time, the CPU seconds the server process
spent in it (read from /proc, Linux; its threads share one interpreter lock), those of this
client (parsing every message of every session, on the same machine) and the machine's load
average before it, so that a ratio can be read against the cores that were actually free.

Measured, in one run: the server's start (command launched -> health check passed), the first
answer after start (one session asks --first-after seconds after the server answers, at once by
default: the generator may still be loading in the background), then for each level of concurrency p50 and p95 over every answer,
overall and per kind of question (those that need the generator, those that do not). The target
of the issue: p50 with 20 sessions within 3 x p50 with one.

Bounded: at most 50 sessions and 100 questions per level, each answer at most --answer-timeout
seconds, the whole run at most --deadline seconds.

    .venv/bin/python benchmarks/ui_load.py --store demo-store --model models/tiny-demo
    .venv/bin/python benchmarks/ui_load.py --store demo-store --model models/tiny-demo --sessions 1 20 --total 40 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_SESSIONS = 50
MAX_QUESTIONS = 100
HOST = "127.0.0.1"


@dataclass
class Answer:
    session: int
    kind: str
    question: str
    seconds: float  # question sent -> the page's script run finished
    first_text: float | None  # question sent -> the answer's first text
    ok: bool
    error: str = ""


def question_bank(store: Path) -> list[tuple[str, str]]:
    """(kind, question) over the store's own parcels and dates, deterministic, kinds interleaved.

    "generated": a parcel on a usable date (the generator writes its analysis); "composed": group
    questions, histories and unusable dates, answered from the records without generating.
    """
    from indexer.store import Store

    records = Store.open(store).records()
    parcels = sorted(records["parcel_id"].astype(str).unique())
    valid = records[records["valid"].astype(bool)].sort_values("date")
    invalid = records[~records["valid"].astype(bool)].sort_values("date")
    years = sorted({d[:4] for d in records["date"]})
    generated, composed = [], []
    for i, pid in enumerate(parcels):
        own = valid[valid["parcel_id"] == pid]["date"].tolist()
        for date in own[-1 - (i % 5)::-7][:3]:  # a few usable dates per parcel, spread over the archive
            generated.append(("generated", f"How was {pid} doing on {date}?"))
        composed.append(("composed", f"NDVI history of {pid} in {years[-1]}"))
        bad = invalid[invalid["parcel_id"] == pid]["date"].tolist()
        if bad:
            composed.append(("composed", f"How was {pid} doing on {bad[len(bad) // 2]}?"))
    for year in years:
        composed += [("composed", f"Which parcels had NDVI below 0.3 in July {year}?"),
                     ("composed", f"Which 3 parcels had the highest NDVI in May {year}?")]
    bank = []
    for g, c in zip(generated, composed):
        bank += [g, c]
    return bank + generated[len(bank) // 2:] + composed[len(bank) // 2:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _unescaped(markdown: str) -> str:
    """Text the app wrote as escaped markdown (`ui.data.md_text`: a backslash before each special
    character), as typed."""
    return re.sub(r"\\(.)", r"\1", markdown)


class Session:
    """One browser session of the app, over its websocket."""

    def __init__(self, port: int, number: int) -> None:
        self.url = f"ws://{HOST}:{port}/_stcore/stream"
        self.number = number
        self.chat_id: str | None = None
        self.ws = None
        self.problems: list[str] = []  # errors and exceptions the page showed

    async def __aenter__(self) -> Session:
        import websockets

        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=60)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def _run(self, timeout: float, question: str | None = None) -> tuple[float, float | None]:
        """One script run of the Ask page (with `question` in its chat input): (seconds to the run's
        end, seconds to the answer's first text)."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.page_name = "ask"
        if question is not None:
            widget = message.rerun_script.widget_states.widgets.add()
            widget.id = self.chat_id
            widget.chat_input_value.data = question
        start = time.perf_counter()
        await self.ws.send(message.SerializeToString())
        # The page draws (the end of) the conversation again first: the new answer is the assistant
        # message after the user message that holds this question.
        first_text, in_user, asked_seen, in_answer = None, False, False, False
        async with asyncio.timeout(timeout):
            while True:
                forward = ForwardMsg()
                forward.ParseFromString(await self.ws.recv())
                kind = forward.WhichOneof("type")
                if kind == "delta":
                    delta = forward.delta
                    if delta.WhichOneof("type") == "add_block" and delta.add_block.WhichOneof("type") == "chat_message":
                        in_user = delta.add_block.chat_message.name == "user"
                        in_answer = delta.add_block.chat_message.name == "assistant" and asked_seen
                    elif delta.WhichOneof("type") == "new_element":
                        element = delta.new_element
                        if element.WhichOneof("type") == "chat_input":
                            self.chat_id = element.chat_input.id
                        elif element.WhichOneof("type") in ("alert", "exception"):
                            self.problems.append(str(getattr(element, element.WhichOneof("type")))[:300])
                        elif (in_user and question is not None and element.WhichOneof("type") == "markdown"
                              and _unescaped(element.markdown.body) == question):
                            asked_seen = True
                        elif (in_answer and first_text is None and element.WhichOneof("type") == "markdown"
                              and element.markdown.body.strip()):
                            first_text = time.perf_counter() - start
                elif kind == "script_finished":
                    return time.perf_counter() - start, first_text

    async def open_page(self, timeout: float) -> float:
        seconds, _ = await self._run(timeout)
        if self.chat_id is None:
            raise RuntimeError("the Ask page drew no chat input: " + " | ".join(self.problems))
        return seconds

    async def ask(self, kind: str, question: str, timeout: float) -> Answer:
        try:
            seconds, first = await self._run(timeout, question)
            return Answer(self.number, kind, question, seconds, first, first is not None,
                          "" if first is not None else "no answer text")
        except TimeoutError:
            return Answer(self.number, kind, question, timeout, None, False, f"no answer within {timeout:.0f} s")


async def first_answer(port: int, question: tuple[str, str], timeout: float) -> Answer:
    async with Session(port, 0) as session:
        await session.open_page(timeout)
        return await session.ask(*question, timeout)


async def level(port: int, sessions: int, questions: list[tuple[str, str]], per_session: int,
                timeout: float) -> list[Answer]:
    """`sessions` sessions ask `questions` at once. They are dealt in conversations of `per_session`
    questions, each in a session of its own (a longer conversation makes every rerun draw more):
    slot i holds conversations i, i + sessions, ...; all slots start together."""
    chunks = [questions[i:i + per_session] for i in range(0, len(questions), per_session)]
    # Every other conversation in reverse: at the start half the sessions ask a question the generator
    # writes and half one composed from the records (the bank alternates the two).
    chunks = [c[::-1] if i % 2 else c for i, c in enumerate(chunks)]
    ready: list[int] = []
    go = asyncio.Event()

    async def slot(number: int) -> list[Answer]:
        out = []
        for k, chunk in enumerate(chunks[number::sessions]):
            async with Session(port, number) as session:
                await session.open_page(timeout)
                if k == 0:
                    ready.append(number)
                    if len(ready) == min(sessions, len(chunks)):
                        go.set()
                    await go.wait()
                out += [await session.ask(kind, q, timeout) for kind, q in chunk]
        return out

    results = await asyncio.gather(*(slot(i) for i in range(min(sessions, len(chunks)))))
    return [a for answers in results for a in answers]


def _process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` and its descendants so far (None: no /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, seconds)
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = entry.read_text()
        except OSError:  # a process that ended meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    if pid not in stats:
        return None
    tree, total = {pid}, 0.0
    for _ in range(8):  # the command, Streamlit's process under it: a shallow tree
        tree |= {child for child, (parent, _) in stats.items() if parent in tree}
    for member in tree:
        total += stats[member][1]
    return total


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(answers: list[Answer]) -> dict:
    out = {}
    for name, chosen in (("all", answers), *((k, [a for a in answers if a.kind == k]) for k in ("generated", "composed"))):
        ok = [a.seconds for a in chosen if a.ok]
        out[name] = {"n": len(chosen), "failed": sum(not a.ok for a in chosen),
                     "p50": percentile(ok, 50), "p95": percentile(ok, 95),
                     "first_text_p50": percentile([a.first_text for a in chosen if a.ok], 50)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="generator folder (default: answers from the stored analyses)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 20], help="levels of concurrency (default 1 20)")
    parser.add_argument("--total", type=int, default=40, help="questions per level, shared by its sessions (default 40)")
    parser.add_argument("--answer-timeout", type=float, default=180.0, help="seconds an answer may take (default 180)")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds the whole run may take (default 900)")
    parser.add_argument("--first-after", type=float, default=0.0,
                        help="seconds after the server is up before the first session arrives (default 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if max(args.sessions) > MAX_SESSIONS or min(args.sessions) < 1:
        parser.error(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if not max(args.sessions) <= args.total <= MAX_QUESTIONS:
        parser.error(f"--total must be between the largest --sessions and {MAX_QUESTIONS}")
    bank = question_bank(args.store)
    port = _free_port()
    command = [sys.executable, "-m", "xvision.cli", "ui", "--store", str(args.store), "--port", str(port),
               "--host", HOST]
    if args.model is not None:
        command += ["--model", str(args.model)]
    started = time.perf_counter()
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    results: dict = {"store": str(args.store), "model": str(args.model) if args.model else None,
                     "questions_per_level": args.total, "levels": {}}
    try:
        for line in server.stdout:
            if "serving at" in line:
                break
        else:
            raise SystemExit("the app did not start")
        results["server_start_s"] = time.perf_counter() - started

        async def run() -> None:
            await asyncio.sleep(args.first_after)
            # Not a question of the levels below: its answer would be served from the kept text.
            first = await first_answer(port, bank[-1 if bank[-1][0] == "generated" else 0], args.answer_timeout)
            results["first_answer_after_start_s"] = time.perf_counter() - started
            results["first_answer"] = asdict(first)
            for number, n in enumerate(args.sessions):
                # Each level its own questions of the same mix: a text generated at one level would be
                # served from the generator's kept texts at the next (distinct while levels x total
                # <= the bank's size).
                questions = [bank[(number * args.total + j) % len(bank)] for j in range(args.total)]
                per_session = -(-args.total // max(args.sessions))  # the same conversation length at every level
                load_before = os.getloadavg()[0]
                server_cpu, client_cpu = _process_cpu_seconds(server.pid), _own_cpu_seconds()
                t0 = time.perf_counter()
                answers = await level(port, n, questions, per_session, args.answer_timeout)
                wall = time.perf_counter() - t0
                server_after = _process_cpu_seconds(server.pid)
                results["levels"][n] = {**summary(answers), "wall_s": wall,
                                        "server_cpu_s": (server_after - server_cpu) if server_cpu is not None
                                        and server_after is not None else None,
                                        "client_cpu_s": _own_cpu_seconds() - client_cpu,
                                        "load_average_before": load_before,
                                        "failures": [asdict(a) for a in answers if not a.ok][:5]}

        async def bounded() -> None:
            async with asyncio.timeout(args.deadline):
                await run()

        asyncio.run(bounded())
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    levels = results["levels"]
    if 1 in levels and len(levels) > 1 and levels[1]["all"]["p50"]:
        top = max(levels)
        results["ratio_p50"] = levels[top]["all"]["p50"] / levels[1]["all"]["p50"]
        # The question mix is half of each kind, so the overall p50 falls between the slowest composed
        # and the fastest generated answers: the ratio of each kind says which one moved.
        results["ratio_p50_by_kind"] = {kind: levels[top][kind]["p50"] / levels[1][kind]["p50"]
                                        for kind in ("generated", "composed")
                                        if levels[1][kind]["p50"] and levels[top][kind]["p50"]}
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    print(f"server start {results['server_start_s']:.1f} s; first session {args.first_after:.0f} s later; first answer after start "
          f"{results['first_answer_after_start_s']:.1f} s ({results['first_answer']['seconds']:.2f} s after asking)")
    print(f"{'sessions':>8} {'kind':>10} {'n':>4} {'failed':>6} {'p50 s':>7} {'p95 s':>7} {'first text p50':>15}")
    for n, level_result in levels.items():
        for kind in ("all", "generated", "composed"):
            r = level_result[kind]
            fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
            print(f"{n:>8} {kind:>10} {r['n']:>4} {r['failed']:>6} {fmt(r['p50']):>7} {fmt(r['p95']):>7} "
                  f"{fmt(r['first_text_p50']):>15}")
    for n, level_result in levels.items():
        cpu = level_result["server_cpu_s"]
        print(f"{n:>8} sessions: {level_result['wall_s']:.1f} s wall, server CPU "
              + ("-" if cpu is None else f"{cpu:.1f} s ({cpu / level_result['wall_s']:.2f} cores busy, "
                 f"{cpu / level_result['all']['n']:.3f} s per answer)")
              + f", client CPU {level_result['client_cpu_s']:.1f} s, "
              f"load average before {level_result['load_average_before']:.1f}")
    if "ratio_p50" in results:
        print(f"p50 with {max(levels)} sessions / p50 with 1: {results['ratio_p50']:.2f} (target: at most 3)")
        print("  by kind: " + ", ".join(f"{k} {r:.2f}" for k, r in results["ratio_p50_by_kind"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
