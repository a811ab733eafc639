// Append messages to a chat history with langchainjs's @langchain/redis, as a JS app would.
//
//   node tests/js/write.mjs <redis url> <key> < messages.json
//
// stdin: a JSON list, oldest first, of {"type": "human" | "ai" | "system" | "tool", ...fields
// of that message class's constructor (content, id, tool_calls, tool_call_id, usage_metadata)}.
import { AIMessage, HumanMessage, SystemMessage, ToolMessage } from "@langchain/core/messages";
import { urlAndKey, withHistory } from "./history.mjs";

const CLASSES = { human: HumanMessage, ai: AIMessage, system: SystemMessage, tool: ToolMessage };

const [url, key] = urlAndKey("node write.mjs <redis url> <key> < messages.json");
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const messages = JSON.parse(Buffer.concat(chunks).toString("utf8")).map(({ type, ...fields }) => {
  if (!(type in CLASSES)) throw new Error(`unknown message type ${JSON.stringify(type)}`);
  return new CLASSES[type](fields);
});
await withHistory(url, key, (history) => history.addMessages(messages));
