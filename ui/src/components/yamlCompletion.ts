/**
 * Completion for flow YAML from the plugins' JSON Schemas: task and trigger `type` values, and
 * the property names of the mapping the cursor is in (its `type:` picks the schema; top-level
 * keys come from the flow schema). It reads the text line by line, which is enough for the
 * block-style YAML flows are written in, and never blocks typing on the server.
 */
import type { CompletionContext, CompletionResult, Completion } from "@codemirror/autocomplete";
import type { Text } from "@codemirror/state";

export interface JsonSchema {
  type?: string | string[];
  description?: string;
  title?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  [key: string]: unknown;
}

export interface PluginSchemas {
  flow: JsonSchema;
  tasks: Record<string, JsonSchema>;
  triggers: Record<string, JsonSchema>;
}

interface LineInfo {
  indent: number; // column of the first key character (after any "- ")
  dash: boolean;
  key: string | null;
  value: string;
}

const LINE = /^(\s*)(-\s+)?(?:([\w.@$-]+)\s*:(?:\s+|$))?(.*)$/;

function parseLine(text: string): LineInfo | null {
  if (!text.trim() || text.trim().startsWith("#")) return null;
  const m = LINE.exec(text);
  if (!m) return null;
  const indent = m[1].length + (m[2]?.length ?? 0);
  return { indent, dash: Boolean(m[2]), key: m[3] ?? null, value: (m[4] ?? "").trim() };
}

/** Properties of a schema, following allOf/anyOf/oneOf and local $refs. */
export function schemaProperties(schema: JsonSchema | undefined, root?: JsonSchema, depth = 0): Record<string, JsonSchema> {
  if (!schema || depth > 6) return {};
  const top = root ?? schema;
  let props: Record<string, JsonSchema> = { ...(schema.properties ?? {}) };
  if (schema.$ref?.startsWith("#/$defs/")) {
    const target = top.$defs?.[schema.$ref.slice("#/$defs/".length)];
    props = { ...schemaProperties(target, top, depth + 1), ...props };
  }
  for (const part of [...(schema.allOf ?? []), ...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    props = { ...schemaProperties(part, top, depth + 1), ...props };
  }
  return props;
}

/** The `type:` of the mapping whose keys sit at `indent`, around line `lineNo` (1-based). */
function mappingType(doc: Text, lineNo: number, indent: number): string | null {
  const check = (n: number): "stop" | string | null => {
    const info = parseLine(doc.line(n).text);
    if (!info) return null;
    if (info.indent < indent) return "stop";
    if (info.indent === indent && info.key === "type" && info.value) return info.value.replace(/^["']|["']$/g, "");
    if (info.indent === indent && info.dash && n !== lineNo) return "stop-after";
    return null;
  };
  for (let n = lineNo; n >= 1; n--) {
    const r = check(n);
    if (r === "stop") break;
    if (r === "stop-after") {
      const info = parseLine(doc.line(n).text)!;
      if (info.key === "type") return info.value;
      break;
    }
    if (r) return r;
  }
  for (let n = lineNo + 1; n <= doc.lines; n++) {
    const info = parseLine(doc.line(n).text);
    if (!info) continue;
    if (info.indent < indent || (info.indent === indent && info.dash)) break;
    if (info.indent === indent && info.key === "type" && info.value) return info.value.replace(/^["']|["']$/g, "");
  }
  return null;
}

/** The top-level section (`tasks`, `triggers`, `errors`...) that holds line `lineNo`. */
function section(doc: Text, lineNo: number): string | null {
  for (let n = lineNo; n >= 1; n--) {
    const text = doc.line(n).text;
    const m = /^([\w-]+)\s*:/.exec(text);
    if (m) return m[1];
  }
  return null;
}

/** Keys already present in the mapping at `indent` around `lineNo`, not to offer twice. */
function presentKeys(doc: Text, lineNo: number, indent: number): Set<string> {
  const keys = new Set<string>();
  for (let n = lineNo - 1; n >= 1; n--) {
    const info = parseLine(doc.line(n).text);
    if (!info) continue;
    if (info.indent < indent) break;
    if (info.indent === indent && info.key) keys.add(info.key);
    if (info.indent === indent && info.dash) break;
  }
  for (let n = lineNo + 1; n <= doc.lines; n++) {
    const info = parseLine(doc.line(n).text);
    if (!info) continue;
    if (info.indent < indent || (info.indent === indent && info.dash)) break;
    if (info.indent === indent && info.key) keys.add(info.key);
  }
  return keys;
}

function describe(schema: JsonSchema | undefined): string | undefined {
  if (!schema) return undefined;
  return schema.description ?? schema.title ?? undefined;
}

function typeLabel(schema: JsonSchema): string | undefined {
  const t = schema.type;
  if (Array.isArray(t)) return t.join(" | ");
  return typeof t === "string" ? t : undefined;
}

/** A CodeMirror completion source reading the schemas through `get` (null until loaded). */
export function flowCompletion(get: () => PluginSchemas | null) {
  return (context: CompletionContext): CompletionResult | null => {
    const schemas = get();
    if (!schemas) return null;
    const line = context.state.doc.lineAt(context.pos);
    const before = line.text.slice(0, context.pos - line.from);

    // A value after `type:`.
    const typeMatch = /^(\s*)(-\s+)?type:\s*(["']?)([\w.]*)$/.exec(before);
    if (typeMatch) {
      const where = section(context.state.doc, line.number);
      const pool = where === "triggers" ? schemas.triggers : schemas.tasks;
      const word = typeMatch[4];
      const options: Completion[] = Object.entries(pool).map(([type, schema]) => ({
        label: type,
        type: "class",
        detail: where === "triggers" ? "trigger" : (schema["x-kray"] as { kind?: string } | undefined)?.kind,
        info: describe(schema),
      }));
      return { from: context.pos - word.length, options, validFor: /^[\w.]*$/ };
    }

    // A key: the line holds only (part of) a key so far.
    const keyMatch = /^(\s*)(-\s+)?([\w-]*)$/.exec(before);
    if (!keyMatch) return null;
    const word = keyMatch[3];
    if (!word && !context.explicit) return null;
    const indent = keyMatch[1].length + (keyMatch[2]?.length ?? 0);
    let props: Record<string, JsonSchema> = {};
    let required: string[] = [];
    if (indent === 0) {
      props = schemaProperties(schemas.flow);
      required = schemas.flow.required ?? [];
    } else {
      const type = mappingType(context.state.doc, line.number, indent);
      const schema = type ? schemas.tasks[type] ?? schemas.triggers[type] : undefined;
      if (!schema) {
        if (keyMatch[2]) props = { id: { type: "string" }, type: { type: "string" } };
        else return null;
      } else {
        props = schemaProperties(schema);
        required = schema.required ?? [];
      }
    }
    const present = presentKeys(context.state.doc, line.number, indent);
    const options: Completion[] = Object.entries(props)
      .filter(([name]) => !present.has(name) || name === word)
      .map(([name, schema]) => ({
        label: name,
        type: "property",
        apply: `${name}: `,
        detail: [typeLabel(schema), required.includes(name) ? "required" : ""].filter(Boolean).join(" · "),
        info: describe(schema),
        boost: required.includes(name) ? 10 : name === "id" || name === "type" ? 20 : 0,
      }));
    if (options.length === 0) return null;
    return { from: context.pos - word.length, options, validFor: /^[\w-]*$/ };
  };
}
