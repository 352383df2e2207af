"""A toy third task, registered by a test (tests/test_tasks.py): it counts the words of the generated data and
reports the count. It shows what a new task is: one folder with its stages and a ``TASK``."""

from compress.tasks import Task

TASK = Task(
    name="word-count",
    summary_line="counts the words of the training text (a test's toy task)",
    stages=("tests.toytask.count", "tests.toytask.report"),
    hooks={"summary": "tests.toytask.report:summary", "rules": "tests.toytask.report:refuse"},
    comparable=False,
)
