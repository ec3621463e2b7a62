// The official `openai` npm package against `chaosgate mock --api openai`: without an
// encoding_format the TypeScript SDK asks for base64 and decodes it, so a mock that
// answered floats would come out as garbage (the issue saw 384 zeros). Prints one JSON
// line: {"dims": [...], "nonzero": [...], "norms": [...]}.
// Usage: node tests/sdk/embeddings_node.mjs BASE_URL   (NODE_PATH: the SDK's node_modules)
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const OpenAI = require(require.resolve("openai", { paths: [process.env.NODE_PATH || "."] }));
const Client = OpenAI.default ?? OpenAI.OpenAI ?? OpenAI;

const base = process.argv[2];
const client = new Client({ baseURL: `${base}/v1`, apiKey: "sk-chaosgate-test", maxRetries: 0, timeout: 5000 });
const r = await client.embeddings.create({ model: "text-embedding-3-small", input: ["alpha", "beta"], dimensions: 384 });
const out = { dims: [], nonzero: [], norms: [] };
for (const d of r.data) {
  out.dims.push(d.embedding.length);
  out.nonzero.push(d.embedding.filter((x) => x !== 0).length);
  out.norms.push(Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0)));
}
console.log(JSON.stringify(out));
