// A client made with the official TypeScript MCP SDK, run by tests/python/test_typescript_sdk.py:
// connects over the transport named on the command line, uses tools, prompts and completion,
// and prints what it saw as one JSON object on stdout. With ANSWER=approve or ANSWER=decline
// in the environment it declares that it can ask the person (elicitation) and answers every
// question so, keeping the questions it was asked. With INBOX naming the fake engine's inbox, it
// first subscribes to the chat SEND_TO, drops a message from that contact there and waits for
// the server's notifications/resources/updated; after the send it also sends a poll there,
// drops the contact's vote in the inbox and reads the tally back.
//
//   node sdk_client.mjs http URL TOKEN
//   node sdk_client.mjs sse URL TOKEN
//   node sdk_client.mjs stdio BINARY   (environment from the caller)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema, ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [kind, target, token] = process.argv.slice(2);
const headers = token ? { Authorization: `Bearer ${token}` } : {};
let transport;
if (kind === "http") {
  transport = new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers } });
} else if (kind === "sse") {
  transport = new SSEClientTransport(new URL(target), {
    requestInit: { headers },
    eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, ...headers } }) },
  });
} else if (kind === "stdio") {
  transport = new StdioClientTransport({ command: target, args: ["stdio"], env: process.env, stderr: "inherit" });
} else {
  throw new Error(`unknown transport ${kind}`);
}

const answer = process.env.ANSWER;
const client = new Client(
  { name: "typescript-sdk-test", version: "1.0.0" },
  answer ? { capabilities: { elicitation: { form: {} } } } : {},
);
const seen = { questions: [] };
if (answer) {
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    seen.questions.push({ message: request.params.message, schema: request.params.requestedSchema });
    return answer === "approve" ? { action: "accept", content: { approve: true } } : { action: answer };
  });
}
await client.connect(transport);
seen.server = client.getServerVersion()?.name;
seen.tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
if (process.env.INBOX) {
  const uri = `whatsapp://chat/${process.env.SEND_TO}`;
  const updated = new Promise((resolve) => {
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      if (notification.params.uri === uri) resolve(notification.params.uri);
    });
  });
  await client.subscribeResource({ uri });
  const id = `TS-PUSH-${Date.now()}`;
  const started = performance.now();
  const file = join(process.env.INBOX, id);
  writeFileSync(`${file}.part`, JSON.stringify({ chat: process.env.SEND_TO, text: `pushed to ${kind}`, id }));
  renameSync(`${file}.part`, `${file}.json`);
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 10000));
  seen.push = { uri: await Promise.race([updated, timeout]), ms: performance.now() - started };
}
const chats = await client.callTool({ name: "list_chats", arguments: {} });
seen.chats = chats.structuredContent?.chats?.map((chat) => chat.jid) ?? [];
const sent = await client.callTool({
  name: "send_message",
  arguments: { recipient: process.env.SEND_TO, message: `from the TypeScript SDK over ${kind}` },
});
seen.sent = !sent.isError;
seen.sentText = sent.content?.map((block) => block.text ?? "").join(" ");
if (process.env.INBOX) {
  const poll = await client.callTool({
    name: "send_poll",
    arguments: { recipient: process.env.SEND_TO, question: `Which SDK? (${kind})`, options: ["Python", "TypeScript"] },
  });
  const pollId = poll.structuredContent?.message?.id;
  const id = `TS-VOTE-${Date.now()}`;
  const file = join(process.env.INBOX, id);
  writeFileSync(`${file}.part`, JSON.stringify({ chat: process.env.SEND_TO, vote: { poll_id: pollId, options: ["TypeScript"] } }));
  renameSync(`${file}.part`, `${file}.json`);
  const deadline = performance.now() + 10000;
  let results;
  do {
    await new Promise((resolve) => setTimeout(resolve, 50));
    results = await client.callTool({ name: "get_poll_results", arguments: { chat_jid: process.env.SEND_TO, message_id: pollId } });
  } while (results.structuredContent?.voter_count !== 1 && performance.now() < deadline);
  seen.poll = results.structuredContent?.options?.map((option) => [option.name, option.votes]);
}
seen.prompts = (await client.listPrompts()).prompts.map((prompt) => prompt.name).sort();
const prompt = await client.getPrompt({ name: "summarize_chat", arguments: { chat_jid: process.env.SEND_TO, limit: "5" } });
seen.prompt = JSON.parse(prompt.messages[1].content.text);
const completed = await client.complete({
  ref: { type: "ref/prompt", name: "summarize_chat" },
  argument: { name: "chat_jid", value: process.env.COMPLETE },
});
seen.completion = completed.completion.values;
await client.close();
process.stdout.write(JSON.stringify(seen) + "\n");
