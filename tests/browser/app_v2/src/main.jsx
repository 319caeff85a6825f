// A small chat page on the v2-native useStream of @langchain/react: the thread streaming
// protocol (POST /threads/{id}/commands, POST /threads/{id}/stream/events), not the
// classic run routes of tests/browser/app. tests/test_browser_v2.py drives it;
// everything it asserts is in the DOM under a stable data-testid. Query parameters:
//   api        the server URL (another origin than this page's)
//   assistant  the assistant or graph id (default react_agent, examples/agents)
//   thread     the thread to open (kept up to date, so a reload reopens it and the
//              hook re-attaches to its run, resuming the stream)
//   transport  "sse" (default) or "websocket"
// Stop cancels the run on the server (stream.stop()); Approve answers an interrupt
// with {approved: true} (stream.respond), Reject with {approved: false}.
import React, { useState } from "react";
import { createRoot } from "react-dom/client";
import { useStream } from "@langchain/react";

import { API_URL, ASSISTANT, params, rememberThread, textOf } from "../../shared/page.js";

const TRANSPORT = params.get("transport") ?? "sse";

function typeOf(message) {
  if (typeof message.getType === "function") return message.getType();
  return message.type ?? message._getType?.() ?? "unknown";
}

function Chat() {
  const [threadId, setThreadId] = useState(params.get("thread"));
  const [text, setText] = useState("");
  const stream = useStream({
    assistantId: ASSISTANT,
    apiUrl: API_URL,
    transport: TRANSPORT,
    threadId,
    onThreadId: (id) => {
      setThreadId(id);
      rememberThread(id);
    },
  });

  const status = stream.error
    ? "error"
    : stream.interrupt
      ? "interrupted"
      : stream.isLoading
        ? "streaming"
        : "idle";
  const interrupt = stream.interrupt;
  const question = interrupt?.value?.question ?? (interrupt ? JSON.stringify(interrupt.value) : "");

  return (
    <main>
      <p>
        <span data-testid="status" data-status={status}>{status}</span>{" "}
        <span data-testid="thread-id">{stream.threadId ?? ""}</span>
      </p>
      {stream.error ? <pre data-testid="error">{String(stream.error?.message ?? stream.error)}</pre> : null}
      <ol data-testid="messages" data-count={stream.messages.length}>
        {stream.messages.map((message, index) => (
          <li key={message.id ?? index} data-testid="message" data-type={typeOf(message)}>
            <span data-testid="message-text">{textOf(message)}</span>
          </li>
        ))}
      </ol>
      {interrupt ? (
        <div data-testid="interrupt">
          <span data-testid="interrupt-question">{question}</span>
          <button data-testid="approve" onClick={() => void stream.respond({ approved: true })}>
            Approve
          </button>
          <button data-testid="reject" onClick={() => void stream.respond({ approved: false })}>
            Reject
          </button>
        </div>
      ) : null}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (!text.trim()) return;
          void stream.submit({ messages: [{ type: "human", content: text }] });
          setText("");
        }}
      >
        <input data-testid="input" value={text} onChange={(e) => setText(e.target.value)} />
        <button data-testid="send" type="submit">Send</button>
        <button data-testid="stop" type="button" disabled={!stream.isLoading}
                onClick={() => void stream.stop()}>
          Stop
        </button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
