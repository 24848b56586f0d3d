/** Two flow revisions side by side, read-only, with their differences highlighted. */
import { useEffect, useRef } from "react";
import { MergeView } from "@codemirror/merge";
import { EditorState } from "@codemirror/state";
import { EditorView } from "@codemirror/view";
import { baseExtensions } from "./YamlEditor";

export default function RevisionDiff({ left, right }: { left: string; right: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const readOnly = [...baseExtensions, EditorState.readOnly.of(true), EditorView.editable.of(false)];
    const view = new MergeView({
      a: { doc: left, extensions: readOnly },
      b: { doc: right, extensions: readOnly },
      parent: host.current!,
      highlightChanges: true,
      gutter: true,
      collapseUnchanged: { margin: 4, minSize: 8 },
    });
    return () => view.destroy();
  }, [left, right]);
  return <div className="merge-box" ref={host} data-testid="revision-diff" />;
}
