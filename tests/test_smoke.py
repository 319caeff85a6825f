import asyncio


async def test_wait_and_stream(client):
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "echo", input={"text": "hi"})
    assert result["echoed"] == ["hi"]
    events = [p.event async for p in client.runs.stream(
        thread["thread_id"], "sleepy", input={"steps": 2}, stream_mode=["custom"])]
    assert events == ["metadata", "custom", "custom"]


async def test_cancel_running(client):
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "sleepy",
                                   input={"steps": 1000, "delay": 0.01})
    await asyncio.sleep(0.1)
    final = await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
    assert final["status"] == "interrupted"
