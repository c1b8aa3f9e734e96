"""Agent RPC: one agent asks another (``ask`` and ``map``) per event, at-least-once.

``quiz`` reads questions and, for each, asks ``square`` (another agent, on
its own topic) with ``square.ask(n)``, or for every third question
``square.map([n, n + 1000])``; it forwards the answers. A request is a
record on ``square``'s topic with reply-to and correlation-id headers; the
answer ``square`` yields goes to the asking incarnation's reply topic, which
its reply consumer reads outside the group. So the caller's event is in hand
for a round trip through two more topics and another worker: commits,
revokes and stops must wait for it, and a crash of either side redoes the
request. The caller runs under ``mode.CrashingSupervisor``: an ask that fails
(its timeout, a reply reader that died) crashes the app, so that the
question is redone rather than acked unanswered (the default supervisor acks
the event of an agent that raised).

Checks: every question has its answers in ``answers`` (at least once), with
the right values; every request in ``square``'s topic (each attempt's) got a
reply, with its correlation id and the right value, in a reply topic.
"""

import json
from typing import Any

import mode

import detstream

app = detstream.App(
    "rpc-ask", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.3,
)
questions = app.topic("questions", key_type=str, value_type=int, partitions=4, internal=True)
requests = app.topic("square-requests", value_type=int, partitions=4, internal=True)
answers = app.topic("answers", key_type=str, partitions=4, internal=True)


@app.agent(requests)
async def square(stream):
    async for n in stream:
        yield n * n


@app.agent(questions, supervisor_strategy=mode.CrashingSupervisor)
async def quiz(stream):
    async for key, n in stream.items():
        if n % 3 == 0:
            got = sorted([r async for r in square.map([n, n + 1000], timeout=120.0)])
        else:
            got = [await square.ask(n, key=key, timeout=120.0)]
        await answers.send(key=key, value={"n": n, "answers": got})


QUESTIONS = [(f"q{i % 9}", i) for i in range(150)]


def sim_scenario(sim):
    sim.producer("questions", QUESTIONS, keyed=True, every=0.06, name="quizmaster")

    @sim.check
    def every_question_answered(result):
        got: dict[int, list[list[int]]] = {}
        for record in result.records("answers"):
            answer = json.loads(record.value)
            got.setdefault(answer["n"], []).append(answer["answers"])
        missing = sorted(set(result.produced("questions")) - set(got))
        assert not missing, f"{len(missing)} questions never answered, e.g. {missing[:5]}"
        wrong = {
            n: seen for n, seen in got.items()
            if any(a != sorted(m * m for m in ([n, n + 1000] if n % 3 == 0 else [n])) for a in seen)
        }
        assert not wrong, f"wrong answers: {dict(list(wrong.items())[:5])}"

    @sim.check
    def every_request_got_its_reply(result):
        replies: dict[str, list[Any]] = {}
        for topic in sorted({e.fields["topic"] for e in result.events("reply-topic")}):
            for record in result.records(topic):
                reply = json.loads(record.value)
                replies.setdefault(reply["correlation_id"], []).append(reply["value"])
        requests_seen = 0
        unanswered, wrong = [], []
        for record in result.records("square-requests"):
            headers = dict(record.headers or ())
            cid = headers["Faust-Ag-CorrelationId"].decode()
            requests_seen += 1
            n = json.loads(record.value)
            if cid not in replies:
                unanswered.append((record.partition, record.offset, n))
            elif any(v != n * n for v in replies[cid]):
                wrong.append((cid, n, replies[cid]))
        assert requests_seen >= len(result.produced("questions")), "fewer requests than questions"
        assert not unanswered, f"{len(unanswered)} requests without a reply, e.g. {unanswered[:5]}"
        assert not wrong, f"replies with the wrong value: {wrong[:5]}"
