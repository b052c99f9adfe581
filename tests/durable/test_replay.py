"""Episode planning against the real SDK, with hand-picked event arrivals: task ids the host gives to new
tasks and to retry timers/attempts must be the ids the SDK gave them, whatever arrives together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df

from devstack.functions_host.durable.protocol import (
    HistoryEventType,
    event,
    event_text,
    flatten_actions,
    run_orchestrator,
)
from devstack.functions_host.durable.replay import Book, Episode, EpisodeInput, plan_episode
from tests.durable.support import functions_of

E = HistoryEventType
app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    retried = context.call_activity_with_retry("flaky", df.RetryOptions(10, 2), "r")
    plain = context.call_activity("square", 3)
    first = yield context.task_any([retried, plain])
    later = yield context.call_activity("square", 4)
    retried_result = yield retried
    return [first.result, later, retried_result]


@app.orchestration_trigger(context_name="context")
def two_steps(context: df.DurableOrchestrationContext):
    a = yield context.call_activity("square", 1)
    b = yield context.call_activity("square", 2)
    return [a, b]


@app.orchestration_trigger(context_name="context")
def one_step(context: df.DurableOrchestrationContext):
    return [(yield context.call_activity("square", 1))]


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.activity_trigger(input_name="value")
def flaky(value: str) -> str:
    return value


ORCHESTRATORS = functions_of(app)[0]
START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Replayer:
    """Runs consecutive episodes of one instance, committing each like the engine does."""

    name: str
    book: Book = field(default_factory=Book)
    played: list[str] = field(default_factory=list)
    clock: datetime = START
    episodes: list[Episode] = field(default_factory=list)

    def episode(self, *messages: dict) -> Episode:
        self.clock += timedelta(seconds=1)
        if not self.played:
            messages = (
                event(E.EXECUTION_STARTED, self.clock, Name=self.name, Version="", Input=None),
                *messages,
            )
        inp = EpisodeInput(
            instance_id="i",
            execution_id="x",
            name=self.name,
            input_value=None,
            parent_instance_id=None,
            book=self.book,
            played=self.played,
            messages=list(messages),
            now=self.clock,
            activities=frozenset({"square", "flaky"}),
            orchestrators=frozenset(ORCHESTRATORS),
        )
        ep = plan_episode(inp, ORCHESTRATORS[self.name])
        self.book = ep.book
        self.played = self.played + [event_text(e, played=True) for e in ep.events]
        self.episodes.append(ep)
        return ep


def completed(task_id: int, value) -> dict:
    return event(E.TASK_COMPLETED, START, TaskScheduledId=task_id, Result=json.dumps(value))


def failed(task_id: int, reason: str) -> dict:
    return event(E.TASK_FAILED, START, TaskScheduledId=task_id, Reason=reason, Details="")


def fired(timer_id: int) -> dict:
    return event(E.TIMER_FIRED, START, TimerId=timer_id)


def test_retry_timer_allocated_before_a_task_yielded_in_the_same_episode():
    r = Replayer("race")
    first = r.episode()
    assert [(t, n) for t, n, _ in first.activities] == [(0, "flaky"), (1, "square")]
    # The plain task's completion arrives before the retry attempt's failure, in one batch.
    second = r.episode(completed(1, 9), failed(0, "boom"))
    assert second.timers and second.timers[0][0] == 2  # the retry timer takes id 2 ...
    assert [(t, n) for t, n, _ in second.activities] == [(3, "square")]  # ... the new yield id 3
    third = r.episode(fired(2))
    assert [(t, n) for t, n, _ in third.activities] == [(4, "flaky")]
    last = r.episode(completed(3, 16), completed(4, "ok"))
    assert last.status == "Completed"
    assert json.loads(last.output) == [9, 16, "ok"]  # each result reached the task that asked for it


def test_last_retry_failure_surfaces_after_one_more_timer():
    r = Replayer("race")
    r.episode()
    r.episode(failed(0, "first"))  # timer 2
    r.episode(fired(2))  # attempt 2 -> id 3
    fourth = r.episode(failed(3, "second"), completed(1, 9))  # timer 4, then the yield of square(4) -> id 5
    assert fourth.timers[0][0] == 4
    assert [(t, n) for t, n, _ in fourth.activities] == [(5, "square")]
    fifth = r.episode(completed(5, 16))
    assert fifth.status == "Running"
    final = r.episode(fired(4))
    assert final.status == "Failed" and "second" in final.failure[0]


def test_completions_in_one_batch_are_all_delivered_to_one_replay():
    r = Replayer("two_steps")
    r.episode()
    second = r.episode(completed(0, 1))
    final = r.episode(completed(1, 4))
    assert second.status == "Running" and final.status == "Completed"
    assert json.loads(final.output) == [1, 4]


def test_fewer_actions_on_replay_is_non_deterministic():
    r = Replayer("two_steps")
    r.episode()
    r.episode(completed(0, 1))  # two activities scheduled so far
    r.name = "one_step"  # the code changed: the replay now completes after one activity
    final = r.episode(completed(1, 4))
    assert final.status == "Failed"
    assert "scheduled an activity 'square' with task id 1" in final.failure[0]
    assert "hasn't (yet?) scheduled it" in final.failure[0]


def test_flatten_walks_compound_actions_depth_first():
    actions = [
        [
            {"actionType": 0, "functionName": "a"},
            {
                "actionType": 12,
                "compoundActions": [
                    {
                        "actionType": 11,
                        "compoundActions": [
                            {"actionType": 5, "fireAt": "x"},
                            {"actionType": 6, "externalEventName": "e"},
                        ],
                    },
                    {"actionType": 0, "functionName": "b"},
                ],
            },
        ]
    ]
    assert [a.get("functionName") or a["actionType"] for a in flatten_actions(actions)] == ["a", 5, 6, "b"]


def test_orchestrator_failure_is_split_from_the_out_of_proc_state():
    def handle(context_json: str) -> str:
        state = json.dumps({"isDone": False, "customStatus": {"phase": "x"}, "actions": [[]]})
        raise Exception(f"it broke\n\n$OutOfProcData$:{state}")

    answer = run_orchestrator(handle, "{}")
    assert answer.failed and answer.error == "it broke" and answer.custom_status == {"phase": "x"}
