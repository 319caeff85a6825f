#!/usr/bin/env node
// The JS SDK's runs.wait and runs.join against a server that keeps long waits alive
// (newlines before the JSON body): tests/test_http_wire.py runs it.
//
//   node wait_check.mjs http://127.0.0.1:2024
//
// Needs the `sleepy` graph. Prints the answers as JSON on stdout; exits 1 on a
// failed check, 2 on bad usage.

import { Client } from "@langchain/langgraph-sdk";

const url = process.argv[2];
if (!url || !/^https?:\/\//.test(url)) {
  console.error("usage: node wait_check.mjs <server URL>");
  process.exit(2);
}

const client = new Client({ apiUrl: url });
const long = { steps: 8, delay: 0.25 }; // about 2 s: many keep-alives
const again = { steps: 16, delay: 0.25 }; // 8 more ticks on the same thread

const thread = await client.threads.create();
const waited = await client.runs.wait(thread.thread_id, "sleepy", { input: long });
const stateless = await client.runs.wait(null, "sleepy", { input: long });
const run = await client.runs.create(thread.thread_id, "sleepy", { input: again });
const joined = await client.runs.join(thread.thread_id, run.run_id);

const answers = { waited, stateless, joined };
console.log(JSON.stringify(answers));
const ok = waited.ticks === 8 && stateless.ticks === 8 && joined.ticks === 16;
process.exit(ok ? 0 : 1);
