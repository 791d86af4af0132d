"""Heavy work as jobs: the same job functions run on RQ workers or in-process.

Queues are named by how long a user waits on them: ``zi-interactive`` for work an
editor is waiting for (code actions), ``zi-background`` for work nobody waits on
(reviews, replays). Workers listen to both, interactive first.

Modules: ``spec`` (the job-function allow-list, `JobSpec` and its id, results),
``execution`` (the wrapper both runners call: progress, cancellation, which errors
are retried), ``runner`` (the `JobRunner` protocol, `InProcessRunner`,
`build_runner`), ``rq_runner`` (`RqRunner`) and ``keyspace`` (the eviction check).
"""

from __future__ import annotations

INTERACTIVE_QUEUE = "zi-interactive"
BACKGROUND_QUEUE = "zi-background"
QUEUES = (INTERACTIVE_QUEUE, BACKGROUND_QUEUE)
