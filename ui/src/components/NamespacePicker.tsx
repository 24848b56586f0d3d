/** Pick a namespace: the known ones from `/namespaces`, or any typed name. */
import { useApi } from "../hooks";
import type { NamespaceInfo } from "../types";

export default function NamespacePicker({ value, onChange }: { value: string; onChange: (ns: string) => void }) {
  const known = useApi<NamespaceInfo[]>("/namespaces");
  const ids = (known.data ?? []).map((n) => n.id).sort();
  return (
    <span className="toolbar">
      <span className="muted">Namespace</span>
      <input
        list="namespace-choices"
        data-testid="namespace-picker"
        placeholder="company.team"
        value={value}
        onChange={(e) => onChange(e.target.value.trim())}
        style={{ width: 240 }}
      />
      <datalist id="namespace-choices">
        {ids.map((id) => (
          <option key={id} value={id} />
        ))}
      </datalist>
    </span>
  );
}

/** The first known namespace, to open a browser somewhere useful. */
export function useFirstNamespace(): string | undefined {
  const known = useApi<NamespaceInfo[]>("/namespaces");
  return known.data?.map((n) => n.id).sort()[0];
}
