// Read a chat history with langchainjs's @langchain/redis and print it as JSON.
//
//   node tests/js/read.mjs <redis url> <key>
//
// Prints one JSON list, oldest message first, of the fields tests/test_langchainjs.py
// asserts on, as the decoded message objects hold them (getMessages() decodes each
// element with @langchain/core's mapStoredMessagesToChatMessages).
import { urlAndKey, withHistory } from "./history.mjs";

const [url, key] = urlAndKey("node read.mjs <redis url> <key>");
const messages = await withHistory(url, key, (history) => history.getMessages());
const shown = messages.map((message) => ({
  class: message.constructor.lc_name(),
  type: message.type,
  content: message.content,
  id: message.id ?? null,
  name: message.name ?? null,
  additional_kwargs: message.additional_kwargs,
  response_metadata: message.response_metadata,
  tool_calls: message.tool_calls ?? null,
  invalid_tool_calls: message.invalid_tool_calls ?? null,
  usage_metadata: message.usage_metadata ?? null,
  tool_call_id: message.tool_call_id ?? null,
  status: message.status ?? null,
  artifact: message.artifact ?? null,
}));
process.stdout.write(`${JSON.stringify(shown)}\n`);
