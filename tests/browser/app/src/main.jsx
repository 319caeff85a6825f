// A small chat page on the official useStream hook, the way a user meets runlane in a
// browser. tests/test_browser.py drives it; everything it asserts is in the DOM under a
// stable data-testid. Query parameters:
//   api        the runlane URL (another origin than this page's)
//   assistant  the assistant or graph id (default react_agent, examples/agents)
//   tag        metadata tag of this page's threads; the thread list shows only these
//   thread     the thread to open (kept up to date, so a reload reopens it)
//   mode       "resumable" (default): reconnectOnMount, Stop cancels by the cancel
//              route; "disconnect": runs made with on_disconnect=cancel, Stop aborts
//              the stream
//   context    JSON, the runs' context: the agent's knobs (token_delay, reply_tokens)
// Approve resumes an interrupt with "approve", Reject with "reject".
import React, { useCallback, useEffect, useMemo, useState } from "react";
import { createRoot } from "react-dom/client";
import { useStream } from "@langchain/langgraph-sdk/react";

import { API_URL, ASSISTANT, params, rememberThread, textOf } from "../../shared/page.js";

const TAG = params.get("tag") ?? "default";
const MODE = params.get("mode") ?? "resumable";
const CONTEXT = JSON.parse(params.get("context") ?? "null");

function ThreadList({ client, current, onOpen, refreshKey }) {
  const [threads, setThreads] = useState([]);
  useEffect(() => {
    let live = true;
    client.threads
      .search({ metadata: { browser_tag: TAG }, limit: 50, sortBy: "created_at", sortOrder: "desc" })
      .then((found) => live && setThreads(found))
      .catch((err) => console.error("thread search failed", err));
    return () => {
      live = false;
    };
  }, [client, refreshKey]);
  return (
    <ul data-testid="thread-list" data-count={threads.length}>
      {threads.map((thread) => {
        const first = (thread.values?.messages ?? []).find((m) => m.type === "human");
        return (
          <li key={thread.thread_id}>
            <button
              data-testid="thread-item"
              data-thread-id={thread.thread_id}
              data-current={thread.thread_id === current ? "true" : "false"}
              onClick={() => onOpen(thread.thread_id)}
            >
              {first ? textOf(first) : "(empty)"}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function Message({ stream, message, index, onEdit, onRegenerate, busy }) {
  const meta = stream.getMessagesMetadata(message, index);
  const options = meta?.branchOptions ?? [];
  const position = options.indexOf(meta?.branch);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  return (
    <li
      data-testid="message"
      data-message-id={message.id ?? ""}
      data-type={message.type}
      data-branches={options.length}
    >
      <b>{message.type}</b>: <span data-testid="message-text">{textOf(message)}</span>
      {(message.tool_calls ?? []).map((call) => (
        <code key={call.id} data-testid="tool-call" data-name={call.name}>
          {`${call.name}(${JSON.stringify(call.args)})`}
        </code>
      ))}
      {options.length > 1 && (
        <span data-testid="branch-switcher">
          <button
            data-testid="branch-prev"
            disabled={position <= 0}
            onClick={() => stream.setBranch(options[position - 1])}
          >
            &lt;
          </button>
          <span data-testid="branch">{`${position + 1}/${options.length}`}</span>
          <button
            data-testid="branch-next"
            disabled={position >= options.length - 1}
            onClick={() => stream.setBranch(options[position + 1])}
          >
            &gt;
          </button>
        </span>
      )}
      {message.type === "human" && !editing && (
        <button
          data-testid="edit"
          disabled={busy}
          onClick={() => {
            setDraft(textOf(message));
            setEditing(true);
          }}
        >
          Edit
        </button>
      )}
      {message.type === "human" && editing && (
        <span>
          <input data-testid="edit-input" value={draft} onChange={(e) => setDraft(e.target.value)} />
          <button
            data-testid="edit-save"
            onClick={() => {
              setEditing(false);
              onEdit(message, meta, draft);
            }}
          >
            Save
          </button>
        </span>
      )}
      {message.type === "ai" && (
        <button data-testid="regenerate" disabled={busy} onClick={() => onRegenerate(meta)}>
          Regenerate
        </button>
      )}
    </li>
  );
}

function App() {
  const [threadId, setThreadId] = useState(params.get("thread"));
  const [runId, setRunId] = useState("");
  const [listKey, setListKey] = useState(0);
  const [draft, setDraft] = useState("");
  const refreshList = useCallback(() => setListKey((k) => k + 1), []);

  const stream = useStream({
    apiUrl: API_URL,
    assistantId: ASSISTANT,
    messagesKey: "messages",
    fetchStateHistory: true, // the branches of regenerate and edit
    reconnectOnMount: MODE === "resumable",
    threadId,
    onThreadId: (id) => {
      setThreadId(id);
      rememberThread(id);
      refreshList();
    },
    onCreated: (run) => setRunId(run.run_id),
    onFinish: () => refreshList(),
    onError: (err) => console.error("stream error", err),
  });

  const runOptions = useMemo(
    () => ({
      metadata: { browser_tag: TAG },
      ...(CONTEXT != null ? { context: CONTEXT } : {}),
      ...(MODE === "disconnect" ? { onDisconnect: "cancel" } : {}),
    }),
    [],
  );

  const send = () => {
    const text = draft;
    setDraft("");
    stream.submit(
      { messages: [{ type: "human", content: text }] },
      {
        ...runOptions,
        optimisticValues: (prev) => ({
          ...prev,
          messages: [...(prev.messages ?? []), { type: "human", content: text }],
        }),
      },
    );
  };
  // An earlier message edited: a run from the checkpoint before it, a new branch.
  const edit = (message, meta, text) => {
    stream.submit(
      { messages: [{ type: "human", content: text }] },
      { ...runOptions, checkpoint: meta?.firstSeenState?.parent_checkpoint },
    );
  };
  // The answer again, from the checkpoint before it.
  const regenerate = (meta) => {
    stream.submit(undefined, { ...runOptions, checkpoint: meta?.firstSeenState?.parent_checkpoint });
  };
  const resume = (decision) => stream.submit(undefined, { ...runOptions, command: { resume: decision } });
  const openThread = (id) => {
    stream.switchThread(id);
    setThreadId(id);
    rememberThread(id);
  };

  const interrupt = stream.interrupt;
  const busy = stream.isLoading;
  const error = stream.error;
  return (
    <div>
      <header>
        thread <span data-testid="thread-id">{threadId ?? ""}</span> run{" "}
        <span data-testid="run-id">{runId}</span> status{" "}
        <span data-testid="status">{busy ? "streaming" : stream.isThreadLoading ? "loading" : "idle"}</span>
        <span data-testid="error">{error ? String(error.message ?? error) : ""}</span>
      </header>
      <aside>
        <button data-testid="new-thread" onClick={() => openThread(null)}>
          New thread
        </button>
        <ThreadList client={stream.client} current={threadId} onOpen={openThread} refreshKey={listKey} />
      </aside>
      <main>
        <ol data-testid="messages">
          {stream.messages.map((message, index) => (
            <Message
              key={message.id ?? index}
              stream={stream}
              message={message}
              index={index}
              busy={busy}
              onEdit={edit}
              onRegenerate={regenerate}
            />
          ))}
        </ol>
        {interrupt && interrupt.value !== undefined && !busy && (
          <div data-testid="interrupt">
            <span data-testid="interrupt-question">{String(interrupt.value?.question ?? "")}</span>
            <button data-testid="approve" onClick={() => resume("approve")}>
              Approve
            </button>
            <button data-testid="reject" onClick={() => resume("reject")}>
              Reject
            </button>
          </div>
        )}
        <input data-testid="input" value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button data-testid="send" disabled={busy || !draft} onClick={send}>
          Send
        </button>
        <button data-testid="stop" disabled={!busy} onClick={() => stream.stop()}>
          Stop
        </button>
      </main>
    </div>
  );
}

createRoot(document.getElementById("root")).render(<App />);
