// What the browser suite's two chat pages (app: the classic useStream; app_v2: the
// v2-native one of @langchain/react) share: their common query parameters, a message's
// text, keeping the open thread in the URL, and the vite config. Plain JavaScript with
// no package of its own: each page's build bundles it from here.

export const params = new URLSearchParams(window.location.search);
export const API_URL = params.get("api") ?? "http://127.0.0.1:2024";
export const ASSISTANT = params.get("assistant") ?? "react_agent";

// The text parts of a message's content (a string, or a list of content blocks).
export function textOf(message) {
  if (typeof message.content === "string") return message.content;
  return (message.content ?? [])
    .map((part) => (typeof part === "string" ? part : part.type === "text" ? part.text ?? "" : ""))
    .join("");
}

// The thread in the page's URL, so a reload reopens it.
export function rememberThread(threadId) {
  const url = new URL(window.location.href);
  if (threadId) url.searchParams.set("thread", threadId);
  else url.searchParams.delete("thread");
  window.history.replaceState(null, "", url);
}
