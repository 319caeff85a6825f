#!/usr/bin/env node
// Drives a running runlane server with the official LangGraph JS SDK
// (@langchain/langgraph-sdk): the `Client`, and the stream machinery React's
// `useStream` is built on (StreamManager + MessageTupleManager, and the
// framework-agnostic StreamOrchestrator that the Vue/Svelte/Angular bindings use).
//
//   node sdk_check.mjs http://127.0.0.1:2024
//
// Needs the test graphs of tests/graphs/langgraph.json (sleepy, echo, hitl, chat).
// Prints a JSON summary on stdout (with every request made if SDK_CHECK_ALL_REQUESTS
// is set; else only those of failed sections); exits 1 if any check failed, 2 on bad usage.

import { Client } from "@langchain/langgraph-sdk";
import {
  MessageTupleManager,
  StreamManager,
  StreamOrchestrator,
} from "@langchain/langgraph-sdk/ui";

const SECTION_TIMEOUT_MS = 60_000;
const url = process.argv[2];
if (!url || !/^https?:\/\//.test(url)) {
  console.error("usage: node sdk_check.mjs <runlane server URL, e.g. http://127.0.0.1:2024>");
  process.exit(2);
}

// ------------------------------------------------------------------ harness

const results = []; // {section, check, ok, detail?}
let currentSection = "setup";

function check(name, ok, detail) {
  const entry = { section: currentSection, check: name, ok: Boolean(ok) };
  if (!ok && detail !== undefined) entry.detail = detail;
  results.push(entry);
  return Boolean(ok);
}

function equal(name, actual, expected) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  return check(name, a === e, { expected, actual });
}

// Every request the SDK makes, with its answer: a failure shows what went over the wire.
const requests = [];
async function recordingFetch(input, init = {}) {
  const target = new URL(typeof input === "string" ? input : input.url);
  const headers = new Headers(init.headers);
  const entry = {
    section: currentSection,
    method: init.method ?? "GET",
    path: target.pathname + target.search,
  };
  if (headers.get("last-event-id") != null) entry.lastEventId = headers.get("last-event-id");
  requests.push(entry);
  try {
    const response = await fetch(input, init);
    entry.status = response.status;
    for (const name of ["location", "content-location"]) {
      if (response.headers.get(name)) entry[name] = response.headers.get(name);
    }
    if (!response.ok) {
      entry.body = (await response.clone().text()).slice(0, 500);
    }
    return response;
  } catch (error) {
    entry.error = String(error?.message ?? error);
    throw error;
  }
}

const client = new Client({ apiUrl: url, callerOptions: { fetch: recordingFetch } });

async function section(name, body) {
  currentSection = name;
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      body(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${SECTION_TIMEOUT_MS} ms`)),
          SECTION_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    check("no exception", false, describe(error));
  } finally {
    clearTimeout(timer);
  }
  const mine = results.filter((r) => r.section === name);
  if (!mine.length) check("ran at least one check", false);
  const failed = mine.filter((r) => !r.ok);
  log(`${failed.length ? "FAIL" : "ok  "} ${name} (${mine.length} checks, ${Date.now() - started} ms)`);
  for (const f of failed) log(`     - ${f.check}: ${JSON.stringify(f.detail ?? null).slice(0, 800)}`);
}

function describe(error) {
  const out = { name: error?.name, message: String(error?.message ?? error) };
  if (error?.status) out.status = error.status;
  if (error?.cause) out.cause = String(error.cause?.message ?? error.cause);
  if (error?.stack) out.stack = String(error.stack).split("\n").slice(0, 6).join("\n");
  return out;
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

// A section that builds on an earlier one says so instead of failing obscurely.
function need(value, sectionName) {
  if (value === undefined) throw new Error(`not run: needs section "${sectionName}", which failed`);
  return value;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function collect(iterable) {
  const events = [];
  for await (const part of iterable) events.push(part);
  return events;
}

// Stream event ids as numbers; runlane numbers each run's events 1, 2, 3, ...
function ids(events) {
  return events.map((e) => Number(e.id));
}

function strictlyIncreasing(numbers) {
  return numbers.every((n, i) => Number.isInteger(n) && (i === 0 || n > numbers[i - 1]));
}

function contiguousFrom(numbers, first) {
  return numbers.every((n, i) => n === first + i);
}

async function waitForStatus(threadId, runId, statuses, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let run;
  while (Date.now() < deadline) {
    run = await client.runs.get(threadId, runId);
    if (statuses.includes(run.status)) return run;
    await sleep(50);
  }
  throw new Error(`run ${runId} still ${run?.status} after ${timeoutMs} ms (waiting for ${statuses})`);
}

async function expectHttpError(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error;
  }
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const summary = { server: url, sdk: null, runs: {} };

// ---------------------------------------------------------------- sections

await section("assistants.search", async () => {
  const all = await client.assistants.search({ limit: 100 });
  const graphs = new Set(all.map((a) => a.graph_id));
  for (const g of ["sleepy", "echo", "hitl", "chat"]) check(`an assistant for graph ${g}`, graphs.has(g), [...graphs]);
  check("assistants have UUID ids", all.every((a) => UUID_RE.test(a.assistant_id)), all.map((a) => a.assistant_id));
  const echo = await client.assistants.search({ graphId: "echo" });
  check("graphId filter", echo.length >= 1 && echo.every((a) => a.graph_id === "echo"), echo);
  const paged = await client.assistants.search({ limit: 1, includePagination: true });
  check("includePagination: an array of one", Array.isArray(paged.assistants) && paged.assistants.length === 1, paged);
  const one = await client.assistants.get(echo[0].assistant_id);
  equal("assistants.get by id", one.assistant_id, echo[0].assistant_id);
  const graph = await client.assistants.getGraph(echo[0].assistant_id).catch((e) => e);
  check("assistants.getGraph answers (a nodes list)", Array.isArray(graph?.nodes), describe(graph));
  summary.assistants = all.length;
});

let thread;
await section("threads.create", async () => {
  thread = await client.threads.create({ metadata: { from: "js-sdk" } });
  check("thread id is a UUID", UUID_RE.test(thread.thread_id), thread);
  equal("new thread is idle", thread.status, "idle");
  equal("metadata kept", thread.metadata?.from, "js-sdk");
  const fetched = await client.threads.get(thread.thread_id);
  equal("threads.get", fetched.thread_id, thread.thread_id);
});

await section("runs.wait echo", async () => {
  need(thread, "threads.create");
  let created;
  const values = await client.runs.wait(thread.thread_id, "echo", {
    input: { text: "hello" },
    onRunCreated: (meta) => { created = meta; },
  });
  equal("returns the final values", values, { text: "hello", echoed: ["hello"] });
  check("onRunCreated got a run id from Content-Location", UUID_RE.test(created?.run_id ?? ""), created);
  equal("onRunCreated thread id", created?.thread_id, thread.thread_id);
  const run = await client.runs.get(thread.thread_id, created.run_id);
  equal("run status", run.status, "success");
  const listed = await client.runs.list(thread.thread_id);
  check("runs.list has it", listed.some((r) => r.run_id === created.run_id), listed.map((r) => r.run_id));
  const joined = await client.runs.join(thread.thread_id, created.run_id);
  equal("runs.join of a finished run gives its values", joined, values);
  const stateless = await client.runs.wait(null, "echo", { input: { text: "solo" } });
  equal("stateless runs.wait", stateless, { text: "solo", echoed: ["solo"] });
  summary.runs.echo = created.run_id;
});

let sleepyRun; // {threadId, runId, events}
await section("runs.stream sleepy values/custom/updates", async () => {
  need(thread, "threads.create");
  let created;
  const events = await collect(client.runs.stream(thread.thread_id, "sleepy", {
    input: { steps: 3, delay: 0.02 },
    streamMode: ["values", "custom", "updates"],
    onRunCreated: (meta) => { created = meta; },
  }));
  const names = events.map((e) => e.event);
  equal("first event is metadata", names[0], "metadata");
  check("metadata carries the run id", UUID_RE.test(events[0]?.data?.run_id ?? ""), events[0]);
  equal("onRunCreated run id = metadata run id", created?.run_id, events[0]?.data?.run_id);
  equal("onRunCreated thread id", created?.thread_id, thread.thread_id);
  check("only the asked modes after metadata",
    names.slice(1).every((n) => ["values", "custom", "updates"].includes(n)), names);
  equal("custom events in order", events.filter((e) => e.event === "custom").map((e) => e.data),
    [{ tick: 1 }, { tick: 2 }, { tick: 3 }]);
  equal("one update per tick", events.filter((e) => e.event === "updates").map((e) => e.data),
    [{ tick: { ticks: 1 } }, { tick: { ticks: 1 } }, { tick: { ticks: 1 } }]);
  const values = events.filter((e) => e.event === "values");
  equal("values: input first, final last", [values[0]?.data, values.at(-1)?.data],
    [{ steps: 3, delay: 0.02, ticks: 0 }, { steps: 3, delay: 0.02, ticks: 3 }]);
  check("every event has an id", events.every((e) => typeof e.id === "string" && e.id !== ""), events.map((e) => e.id));
  check("ids strictly increasing", strictlyIncreasing(ids(events)), ids(events));
  check("ids are 1, 2, 3, ...", contiguousFrom(ids(events), 1), ids(events));
  check("no error event", !names.includes("error"), events.filter((e) => e.event === "error"));
  const run = await client.runs.get(thread.thread_id, created.run_id);
  equal("run status after the stream", run.status, "success");
  const again = requests.filter((r) => r.section === currentSection && r.method === "GET" && r.path.endsWith("/stream"));
  check("the SDK did not have to reconnect", again.length === 0, again);
  sleepyRun = { threadId: thread.thread_id, runId: created.run_id, events };
  summary.runs.sleepy = { run_id: created.run_id, events: events.length };
});

await section("runs.stream chat messages-tuple", async () => {
  const chatThread = await client.threads.create();
  const events = await collect(client.runs.stream(chatThread.thread_id, "chat", {
    input: { messages: [{ type: "human", content: "hi" }] },
    streamMode: "messages-tuple",
  }));
  const names = events.map((e) => e.event);
  equal("metadata first", names[0], "metadata");
  const messages = events.filter((e) => e.event === "messages");
  check("token events named `messages`", messages.length >= 2 && names.slice(1).every((n) => n === "messages"), names);
  check("each is a [message chunk, metadata] tuple",
    messages.every((e) => Array.isArray(e.data) && e.data.length === 2 && typeof e.data[0]?.content === "string"),
    messages.slice(0, 2).map((e) => e.data));
  equal("chunks concatenate to the reply", messages.map((e) => e.data[0].content).join(""), "hello there friend");
  check("all chunks share one message id", new Set(messages.map((e) => e.data[0].id)).size === 1, messages.map((e) => e.data[0].id));
  check("metadata names the node", messages.every((e) => e.data[1]?.langgraph_node === "call"), messages[0]?.data?.[1]);
  check("ids strictly increasing", strictlyIncreasing(ids(events)), ids(events));
  const state = await client.threads.getState(chatThread.thread_id);
  equal("thread state has both messages", state.values.messages?.map((m) => [m.type, m.content]),
    [["human", "hi"], ["ai", "hello there friend"]]);
});

await section("stateless runs.stream (thread null)", async () => {
  let created;
  const events = await collect(client.runs.stream(null, "echo", {
    input: { text: "nobody's thread" },
    streamMode: ["values"],
    onRunCreated: (meta) => { created = meta; },
  }));
  const create = requests.find((r) => r.section === currentSection && r.method === "POST" && r.path === "/runs/stream");
  check("POST /runs/stream answered 200", create?.status === 200, create);
  check("Content-Location names the run", /\/runs\/[0-9a-f-]{36}$/.test(create?.["content-location"] ?? ""), create);
  equal("onRunCreated run id (parsed from Content-Location) = metadata run id", created?.run_id, events[0]?.data?.run_id);
  // Content-Location is /runs/<id> for a stateless run, so the SDK reports no thread id,
  // exactly as with the reference server.
  equal("onRunCreated thread id for a stateless run", created?.thread_id, undefined);
  equal("final values", events.filter((e) => e.event === "values").at(-1)?.data, { text: "nobody's thread", echoed: ["nobody's thread"] });
  check("ids strictly increasing", strictlyIncreasing(ids(events)), ids(events));
  const streamGets = requests.filter((r) => r.section === currentSection && r.method === "GET" && r.path.endsWith("/stream"));
  check("no reconnect after a complete stream", streamGets.length === 0, streamGets);
  summary.runs.stateless = created?.run_id;
});

await section("runs.joinStream finished run", async () => {
  need(sleepyRun, "runs.stream sleepy values/custom/updates");
  const { threadId, runId, events } = sleepyRun;
  const strip = (list) => list.map((e) => ({ id: e.id, event: e.event, data: e.data }));
  const replay = await collect(client.runs.joinStream(threadId, runId));
  equal("joinStream with no Last-Event-ID replays the whole run", strip(replay), strip(events));
  const all = await collect(client.runs.joinStream(threadId, runId, { lastEventId: "-1" }));
  equal("lastEventId '-1' (useStream's 'from the start') replays the whole run", strip(all), strip(events));
  const after = await collect(client.runs.joinStream(threadId, runId, { lastEventId: "3" }));
  equal("lastEventId '3' gives exactly the events after 3", strip(after), strip(events.filter((e) => Number(e.id) > 3)));
  const last = events.at(-1).id;
  const none = await collect(client.runs.joinStream(threadId, runId, { lastEventId: last }));
  equal("lastEventId = the last id gives nothing", none.length, 0);
  const filtered = await collect(client.runs.joinStream(threadId, runId, { streamMode: ["custom"] }));
  // runlane lets `metadata` (and `error`) through a join's stream_mode filter.
  equal("streamMode filter on join", filtered.map((e) => e.event).filter((n) => n !== "metadata"), ["custom", "custom", "custom"]);
});

await section("runs.joinStream running run + resume", async () => {
  const t = await client.threads.create();
  const run = await client.runs.create(t.thread_id, "sleepy", {
    input: { steps: 8, delay: 0.15 },
    streamMode: ["values", "custom"],
  });
  check("runs.create returns a pending/running run", ["pending", "running"].includes(run.status), run);
  // A client that drops after a few events ...
  const first = [];
  const controller = new AbortController();
  for await (const part of client.runs.joinStream(t.thread_id, run.run_id, { signal: controller.signal })) {
    first.push(part);
    if (first.length >= 4) { controller.abort(); break; }
  }
  const lastSeen = first.at(-1).id;
  const midRun = await client.runs.get(t.thread_id, run.run_id);
  check("the run was still running when the client dropped", midRun.status === "running", midRun.status);
  // ... and comes back with Last-Event-ID while the run is still going.
  const rest = await collect(client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: lastSeen }));
  check("resume starts right after the last seen id", Number(rest[0]?.id) === Number(lastSeen) + 1, { lastSeen, first: rest[0]?.id });
  check("resumed ids contiguous", contiguousFrom(ids(rest), Number(lastSeen) + 1), ids(rest));
  const done = await client.runs.get(t.thread_id, run.run_id);
  equal("run finished", done.status, "success");
  const full = await collect(client.runs.joinStream(t.thread_id, run.run_id, { lastEventId: "-1" }));
  equal("first part + resumed part = the whole run", [...first, ...rest].map((e) => [e.id, e.event, e.data]),
    full.map((e) => [e.id, e.event, e.data]));
  equal("all ticks arrived once", full.filter((e) => e.event === "custom").map((e) => e.data.tick), [1, 2, 3, 4, 5, 6, 7, 8]);
  equal("final values", full.filter((e) => e.event === "values").at(-1)?.data?.ticks, 8);
});

await section("runs.cancel twice", async () => {
  const t = await client.threads.create();
  const run = await client.runs.create(t.thread_id, "sleepy", { input: { steps: 200, delay: 0.1 } });
  await waitForStatus(t.thread_id, run.run_id, ["running"]);
  const cancelled = await client.runs.cancel(t.thread_id, run.run_id, true);
  equal("cancel(wait=true) returns the final run", cancelled?.status, "interrupted");
  const again = await expectHttpError(client.runs.cancel(t.thread_id, run.run_id, true));
  check("second cancel(wait=true) does not throw", again === null, again && describe(again));
  const noWait = await expectHttpError(client.runs.cancel(t.thread_id, run.run_id));
  check("cancel(wait=false) of a cancelled run does not throw (202)", noWait === null, noWait && describe(noWait));
  const statuses = requests.filter((r) => r.section === currentSection && r.path.includes("/cancel")).map((r) => r.status);
  equal("HTTP statuses of the three cancels", statuses, [200, 200, 202]);
  const final = await client.runs.get(t.thread_id, run.run_id);
  equal("run stays interrupted", final.status, "interrupted");
  const thread = await client.threads.get(t.thread_id);
  equal("thread idle again", thread.status, "idle");
  // A background run cancelled without waiting, then cancelled again at once.
  const run2 = await client.runs.create(t.thread_id, "sleepy", { input: { steps: 200, delay: 0.1 } });
  await waitForStatus(t.thread_id, run2.run_id, ["running"]);
  const c1 = await expectHttpError(client.runs.cancel(t.thread_id, run2.run_id));
  const c2 = await expectHttpError(client.runs.cancel(t.thread_id, run2.run_id));
  check("two quick cancel(wait=false) do not throw", c1 === null && c2 === null, [c1, c2].map((e) => e && describe(e)));
  equal("run ends interrupted", (await waitForStatus(t.thread_id, run2.run_id, ["interrupted", "success", "error"])).status, "interrupted");
  // runlane's contract: nothing to cancel on a finished run is a 409 the SDK raises.
  need(sleepyRun, "runs.stream sleepy values/custom/updates");
  const tooLate = await expectHttpError(client.runs.cancel(sleepyRun.threadId, sleepyRun.runId));
  equal("cancel of a successful run: HTTP 409", tooLate?.status, 409);
});

await section("HITL interrupt + resume", async () => {
  const t = await client.threads.create();
  let created;
  const paused = await client.runs.wait(t.thread_id, "hitl", {
    input: { question: "ship it?" },
    onRunCreated: (meta) => { created = meta; },
  });
  equal("wait result shows the interrupt", paused.__interrupt__?.map((i) => i.value), [{ question: "ship it?" }]);
  const state = await client.threads.getState(t.thread_id);
  equal("state.next", state.next, ["ask"]);
  equal("state task interrupts", state.tasks?.flatMap((task) => task.interrupts.map((i) => i.value)), [{ question: "ship it?" }]);
  const thread = await client.threads.get(t.thread_id);
  equal("thread status interrupted", thread.status, "interrupted");
  check("thread.interrupts lists it", Object.values(thread.interrupts ?? {}).flat().some((i) => i.value?.question === "ship it?"), thread.interrupts);
  equal("the run itself succeeded", (await client.runs.get(t.thread_id, created.run_id)).status, "success");

  const resumed = await client.runs.stream(t.thread_id, "hitl", { command: { resume: "yes" }, streamMode: ["values", "updates"] });
  const events = await collect(resumed);
  equal("resumed run ends with the answer", events.filter((e) => e.event === "values").at(-1)?.data,
    { question: "ship it?", answer: "yes", done: true });
  check("no error event", !events.some((e) => e.event === "error"), events.filter((e) => e.event === "error"));
  const after = await client.threads.getState(t.thread_id);
  equal("state.next empty after resume", after.next, []);
  equal("state values", after.values, { question: "ship it?", answer: "yes", done: true });
  equal("thread idle", (await client.threads.get(t.thread_id)).status, "idle");

  // getHistory as useStream's fetchStateHistory calls it.
  const history = await client.threads.getHistory(t.thread_id, { limit: 10 });
  check("history has the checkpoints, newest first", history.length >= 4, history.length);
  equal("history[0] is the current state", history[0]?.checkpoint?.checkpoint_id, after.checkpoint?.checkpoint_id);
  check("each entry has values, next, checkpoint, parent_checkpoint",
    history.every((s) => "values" in s && Array.isArray(s.next) && s.checkpoint?.checkpoint_id && "parent_checkpoint" in s), history[0]);
  check("the interrupted checkpoint is in the history",
    history.some((s) => s.next?.includes("ask") && s.tasks?.some((task) => task.interrupts?.length)), history.map((s) => s.next));
  equal("limit", (await client.threads.getHistory(t.thread_id, { limit: 2 })).length, 2);
  const before = await client.threads.getHistory(t.thread_id, {
    limit: 1,
    before: { configurable: { checkpoint_id: history[0].checkpoint.checkpoint_id } },
  }).catch((e) => e);
  equal("before (a config, as the JS SDK types it)", before?.[0]?.checkpoint?.checkpoint_id ?? describe(before), history[1]?.checkpoint?.checkpoint_id);
  const atCheckpoint = await client.threads.getState(t.thread_id, history[1].checkpoint.checkpoint_id);
  equal("getState at a checkpoint id", atCheckpoint.checkpoint?.checkpoint_id, history[1].checkpoint.checkpoint_id);
});

// ----------------------------------------------------- useStream internals

// What React's useStream (src/react/stream.lgp.tsx) does on submit(), minus React:
// a StreamManager fed by client.runs.stream with the options useStream passes.
await section("useStream core: StreamManager + MessageTupleManager", async () => {
  const messages = new MessageTupleManager();
  const manager = new StreamManager(messages, { throttle: false });
  const snapshots = [];
  manager.subscribe(() => {
    const ai = manager.values?.messages?.find((m) => m.type === "ai");
    if (ai) snapshots.push(ai.content);
  });
  const t = await client.threads.create();
  let callbackMeta;
  let succeeded = false;
  let failure;
  const metadataEvents = [];
  const getMessages = (v) => (Array.isArray(v.messages) ? v.messages : []);
  const setMessages = (current, list) => ({ ...current, messages: list });
  await manager.start(
    async (signal) => client.runs.stream(t.thread_id, "chat", {
      input: { messages: [{ type: "human", content: "hi" }] },
      // useStream tracks these when the component reads `messages`/`values`.
      streamMode: ["messages-tuple", "values"],
      onDisconnect: "cancel",
      streamResumable: false,
      signal,
      onRunCreated(params) {
        callbackMeta = { run_id: params.run_id, thread_id: params.thread_id ?? t.thread_id };
      },
    }),
    {
      getMessages,
      setMessages,
      initialValues: {},
      callbacks: { onMetadataEvent: (data) => metadataEvents.push(data) },
      async onSuccess() { succeeded = true; },
      onError(error) { failure = error; },
    },
  );
  check("no stream error", manager.error === undefined && failure === undefined, describe(manager.error ?? failure));
  check("onSuccess called", succeeded);
  equal("isLoading false at the end", manager.isLoading, false);
  equal("onMetadataEvent got the run id", metadataEvents[0]?.run_id, callbackMeta?.run_id);
  equal("onRunCreated thread id", callbackMeta?.thread_id, t.thread_id);
  equal("messages assembled", getMessages(manager.values ?? {}).map((m) => [m.type, m.content]),
    [["human", "hi"], ["ai", "hello there friend"]]);
  check("the AI message grew token by token", snapshots.some((c) => c && c !== "hello there friend"), snapshots);
  equal("run succeeded", (await client.runs.get(t.thread_id, callbackMeta.run_id)).status, "success");
});

// StreamOrchestrator: the framework-agnostic useStream (thread, history, interrupts,
// submit/resume, joinStream, stop) shared by the Vue/Svelte/Angular bindings.
function orchestrator(assistantId, extra = {}) {
  const events = { created: [], finished: [], errors: [], custom: [] };
  const orch = new StreamOrchestrator(
    {
      fetchStateHistory: { limit: 10 },
      onCreated: (meta) => events.created.push(meta),
      onFinish: (state, meta) => events.finished.push({ state, meta }),
      onError: (error) => events.errors.push(error),
      onCustomEvent: (data) => events.custom.push(data),
      ...extra,
    },
    {
      getClient: () => client,
      getAssistantId: () => assistantId,
      getMessagesKey: () => "messages",
    },
  );
  return { orch, events };
}

await section("useStream core: StreamOrchestrator HITL", async () => {
  const { orch, events } = orchestrator("hitl");
  await orch.submit({ question: "deploy?" });
  check("a thread was created", UUID_RE.test(orch.threadId ?? ""), orch.threadId);
  equal("no errors", events.errors.map(describe), []);
  equal("interrupt surfaced", orch.interrupts.map((i) => i.value), [{ question: "deploy?" }]);
  equal("onCreated thread id", events.created[0]?.thread_id, orch.threadId);
  check("onFinish got the thread state from history", events.finished[0]?.state?.next?.includes("ask"), events.finished[0]?.state);
  await orch.submit(null, { command: { resume: "go" } });
  equal("no errors after resume", events.errors.map(describe), []);
  equal("values after resume", orch.values, { question: "deploy?", answer: "go", done: true });
  equal("no interrupt left", orch.interrupts, []);
  check("history fetched", (orch.historyData.data?.length ?? 0) >= 4, orch.historyData.data?.length);
  // joinStream of the finished resume run, as the rejoin-on-mount path does (lastEventId "-1").
  const resumeRun = events.created.at(-1).run_id;
  await orch.joinStream(resumeRun);
  equal("no errors after joinStream", events.errors.map(describe), []);
  equal("values after joinStream", orch.values, { question: "deploy?", answer: "go", done: true });
  orch.dispose();
});

await section("useStream core: StreamOrchestrator chat + stop", async () => {
  const { orch, events } = orchestrator("chat");
  orch.trackStreamMode("messages-tuple"); // what reading `stream.messages` does
  await orch.submit({ messages: [{ type: "human", content: "hello?" }] });
  equal("no errors", events.errors.map(describe), []);
  equal("messages", orch.messages.map((m) => [m.getType?.() ?? m.type, m.content]),
    [["human", "hello?"], ["ai", "hello there friend"]]);
  orch.dispose();

  // Stop: useStream aborts the stream; with onDisconnect "cancel" the server cancels the run.
  const sleepy = orchestrator("sleepy");
  const submitted = sleepy.orch.submit({ steps: 200, delay: 0.1 });
  const deadline = Date.now() + 15_000;
  while (sleepy.events.custom.length < 2 && Date.now() < deadline) await sleep(20);
  check("custom events arrived while running", sleepy.events.custom.length >= 2, sleepy.events.custom);
  await sleepy.orch.stop();
  await submitted;
  equal("no errors on stop", sleepy.events.errors.map(describe), []);
  const runId = sleepy.events.created[0]?.run_id;
  const stopped = await waitForStatus(sleepy.orch.threadId, runId, ["interrupted", "success", "error"]);
  equal("the server cancelled the run when the stream was dropped", stopped.status, "interrupted");
  sleepy.orch.dispose();
});

await section("useStream core: StreamOrchestrator queue (submit while running)", async () => {
  // A second submit while a run streams: useStream creates it with multitaskStrategy
  // "enqueue", then, when the first ends, joins its stream with Last-Event-ID "-1".
  const { orch, events } = orchestrator("sleepy");
  const first = orch.submit({ steps: 3, delay: 0.1 });
  const deadline = Date.now() + 15_000;
  while (events.created.length < 1 && Date.now() < deadline) await sleep(20);
  await orch.submit({ steps: 2, delay: 0.05 });
  equal("the second submit was queued", orch.queueSize, 1);
  const queuedId = orch.queueEntries[0]?.id;
  await first;
  while ((orch.queueSize > 0 || orch.isLoading || events.finished.length < 2) && Date.now() < deadline) await sleep(20);
  equal("no errors", events.errors.map(describe), []);
  equal("queue drained", orch.queueSize, 0);
  equal("queued run succeeded", (await client.runs.get(orch.threadId, queuedId)).status, "success");
  const joins = requests.filter((r) => r.section === currentSection && r.method === "GET" && r.path.includes(`/runs/${queuedId}/stream`));
  check("joined the queued run with Last-Event-ID -1", joins.some((r) => r.lastEventId === "-1" && r.status === 200), joins);
  equal("values after both runs (3 ticks, then 1)", orch.values?.ticks, 4);
  orch.dispose();
});

// -------------------------------------------------------------------- report

currentSection = "wire";
const serverErrors = requests.filter((r) => (r.status ?? 0) >= 500 || r.error);
check("no 5xx answers or network errors", serverErrors.length === 0, serverErrors);

try {
  const { createRequire } = await import("node:module");
  summary.sdk = createRequire(import.meta.url)("@langchain/langgraph-sdk/package.json").version;
} catch {
  summary.sdk = "unknown";
}
const failed = results.filter((r) => !r.ok);
summary.checks = results.length;
summary.failed = failed.length;
summary.sections = [...new Set(results.map((r) => r.section))].map((name) => ({
  name,
  ok: results.filter((r) => r.section === name).every((r) => r.ok),
}));
summary.failures = failed;
if (process.env.SDK_CHECK_ALL_REQUESTS) {
  summary.requests = requests;
} else if (failed.length) {
  const involved = new Set(failed.map((f) => f.section));
  summary.requests = requests.filter((r) => involved.has(r.section));
}
console.log(JSON.stringify(summary, null, 2));
if (failed.length) {
  log(`\n${failed.length} of ${results.length} checks failed against ${url} (see "failures" and "requests" above)`);
  process.exit(1);
}
log(`all ${results.length} checks passed against ${url}`);
process.exit(0);
