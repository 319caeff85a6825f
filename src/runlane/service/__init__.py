"""Use cases: one module per resource. No HTTP here, and no SQL.

The service is the only door to the executor and the store for the HTTP layer and
for background loops: it checks what a request means, asks the store to change
state, and tells the executor and the streams what changed.

- runs.py            create, cancel, join, wait, stream and delete runs
- threads.py         copy and prune threads
- assistants.py      delete an assistant with what hangs on it
- crons.py           create, read, change, delete and fire crons
- schedules.py       cron expressions: parse, validate, next firing
- thread_stream.py   a thread's stream: its runs one after another
- graph_schemas.py   the JSON schemas of a served graph
"""
