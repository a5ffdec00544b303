// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned in package.json).
//   node tools/asyncapi/validate.mjs [--json] [path]   (path default: schemas/generated/asyncapi.json)
// Prints one line per diagnostic (severity, path, message, rule) and a summary, or with --json one JSON
// object {file, diagnostics: [{severity, code, path, message}]}. Severity as the parser gives it: 0 error,
// 1 warning, 2 information, 3 hint. Exit 1 on any error, 2 if the document cannot be read. Warnings do not
// change the exit code: tests/unit/test_asyncapi_valid.py decides which (if any) are accepted.
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { Parser } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "information", "hint"];
const args = process.argv.slice(2);
const asJson = args.includes("--json");
const file =
  args.find((a) => a !== "--json") ?? fileURLToPath(new URL("../../schemas/generated/asyncapi.json", import.meta.url));

let source;
try {
  source = await readFile(file, "utf8");
} catch (error) {
  console.error(`cannot read ${file}: ${error.message}`);
  process.exit(2);
}
const diagnostics = (await new Parser().validate(source, { source: file })).map((d) => ({
  severity: d.severity,
  code: String(d.code),
  path: (d.path ?? []).join("."),
  message: d.message,
}));
if (asJson) {
  console.log(JSON.stringify({ file, diagnostics }));
} else {
  for (const d of diagnostics) {
    console.log(`${SEVERITY[d.severity] ?? d.severity}\t${d.path || "(document)"}\t${d.message}\t[${d.code}]`);
  }
  const count = (s) => diagnostics.filter((d) => d.severity === s).length;
  console.log(`asyncapi: ${count(0)} errors, ${count(1)} warnings, ${count(2)} information, ${count(3)} hints (${file})`);
}
process.exit(diagnostics.some((d) => d.severity === 0) ? 1 : 0);
