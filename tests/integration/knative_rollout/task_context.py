"""What operators called outside a DAG run get as ``context``: a task instance that names itself, keeps XComs.

The operators read ``ti`` for who writes (the history's ``by``: dag_id/run_id/task_id/try) and push the
extra links' URLs; nothing else of Airflow is involved when a test calls ``execute`` directly.
"""

from __future__ import annotations

from typing import Any


class StandInTaskInstance:
    """The parts of ``ti`` the operators use when ``execute`` is called directly."""

    def __init__(self, task_id: str = "direct", dag_id: str = "tests", run_id: str = "direct-call") -> None:
        self.task_id = task_id
        self.dag_id = dag_id
        self.run_id = run_id
        self.try_number = 1
        self.map_index = -1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        """Keep the value, like the real XCom table would."""
        self.xcoms[key] = value


def task_context(task_id: str = "direct") -> dict[str, Any]:
    """Return a context for calling an operator's ``execute`` directly."""
    return {"ti": StandInTaskInstance(task_id)}
