/** A CodeMirror 6 YAML editor with server diagnostics and schema completion. */
import { useEffect, useRef } from "react";
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState, type Extension } from "@codemirror/state";
import {
  drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers,
  rectangularSelection, crosshairCursor, dropCursor,
} from "@codemirror/view";
import type { Issue } from "../api";
import { flowCompletion, type PluginSchemas } from "./yamlCompletion";

export interface YamlEditorProps {
  value: string;
  onChange?: (value: string) => void;
  issues?: Issue[];
  schemas?: PluginSchemas | null;
  onSave?: () => void;
  readOnly?: boolean;
  /** A line to scroll to and select (1-based), e.g. from the issues list. */
  jumpTo?: { line: number; column?: number | null; seq: number } | null;
}

/** Map server issues (1-based line/column) to CodeMirror diagnostics, clamped to the text. */
export function toDiagnostics(state: EditorState, issues: Issue[]): Diagnostic[] {
  const doc = state.doc;
  return issues.map((issue) => {
    const lineNo = Math.min(Math.max(issue.line ?? 1, 1), doc.lines);
    const line = doc.line(lineNo);
    const col = Math.max((issue.column ?? 1) - 1, 0);
    const from = Math.min(line.from + col, line.to);
    // Underline to the end of the token (or the line when the column is at its start).
    const rest = line.text.slice(from - line.from);
    const token = /^\S+/.exec(rest);
    let to = token ? from + token[0].length : line.to;
    if (to === from) to = Math.min(line.to, from + 1);
    return {
      from,
      to,
      severity: "error",
      message: issue.path ? `${issue.path}: ${issue.message}` : issue.message,
      source: "kray",
    };
  });
}

export const baseExtensions: Extension[] = [
  lineNumbers(),
  highlightActiveLineGutter(),
  foldGutter(),
  drawSelection(),
  dropCursor(),
  EditorState.allowMultipleSelections.of(true),
  indentOnInput(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  bracketMatching(),
  closeBrackets(),
  rectangularSelection(),
  crosshairCursor(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  indentUnit.of("  "),
  EditorState.tabSize.of(2),
  yaml(),
];

export default function YamlEditor({ value, onChange, issues, schemas, onSave, readOnly, jumpTo }: YamlEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const viewRef = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  const onSaveRef = useRef(onSave);
  const schemasRef = useRef<PluginSchemas | null>(schemas ?? null);
  onChangeRef.current = onChange;
  onSaveRef.current = onSave;
  schemasRef.current = schemas ?? null;

  useEffect(() => {
    const view = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          ...baseExtensions,
          history(),
          lintGutter(),
          autocompletion({ override: [flowCompletion(() => schemasRef.current)], activateOnTyping: true }),
          keymap.of([
            {
              key: "Mod-s",
              preventDefault: true,
              run: () => {
                onSaveRef.current?.();
                return true;
              },
            },
            indentWithTab,
            ...closeBracketsKeymap,
            ...defaultKeymap,
            ...searchKeymap,
            ...historyKeymap,
            ...foldKeymap,
            ...completionKeymap,
          ]),
          EditorState.readOnly.of(Boolean(readOnly)),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) onChangeRef.current?.(update.state.doc.toString());
          }),
          EditorView.contentAttributes.of({ "data-testid": "yaml-editor-content", "aria-label": "Flow YAML" }),
        ],
      }),
    });
    viewRef.current = view;
    return () => {
      view.destroy();
      viewRef.current = null;
    };
    // The editor is created once; later value changes from outside are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // Outside changes (a loaded revision, a template) replace the text.
  useEffect(() => {
    const view = viewRef.current;
    if (!view) return;
    const current = view.state.doc.toString();
    if (current !== value) view.dispatch({ changes: { from: 0, to: current.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const view = viewRef.current;
    if (!view) return;
    view.dispatch(setDiagnostics(view.state, toDiagnostics(view.state, issues ?? [])));
  }, [issues]);

  useEffect(() => {
    const view = viewRef.current;
    if (!view || !jumpTo) return;
    const line = view.state.doc.line(Math.min(Math.max(jumpTo.line, 1), view.state.doc.lines));
    const pos = Math.min(line.from + Math.max((jumpTo.column ?? 1) - 1, 0), line.to);
    view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
    view.focus();
  }, [jumpTo]);

  return <div className="editor-box" ref={host} data-testid="yaml-editor" />;
}
