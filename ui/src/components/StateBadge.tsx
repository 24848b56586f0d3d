/** A state shown the same way everywhere: colour from styles.css (`--state-<name>`). */
export function stateClass(state: string | null | undefined): string {
  return `state-${(state ?? "unknown").toLowerCase()}`;
}

export default function StateBadge({ state, small }: { state: string | null | undefined; small?: boolean }) {
  return (
    <span
      className={`state-badge ${stateClass(state)}${small ? " small" : ""}`}
      data-testid="state-badge"
      data-state={state ?? ""}
      title={state ?? ""}
    >
      {state ?? "—"}
    </span>
  );
}

export { StateBadge };
