/** The few line icons the UI uses, inline SVG (no icon font, nothing fetched). */
const PATHS: Record<string, string> = {
  flows: "M4 6h6v4H4zM14 14h6v4h-6zM7 10v4a2 2 0 0 0 2 2h5",
  executions: "M8 5l11 7-11 7z",
  triggers: "M12 7v5l3 2M12 21a9 9 0 1 1 0-18 9 9 0 0 1 0 18z",
  kv: "M15 7a4 4 0 1 1-3.5 6H9l-1.5 1.5L6 13l-1.5 1.5L3 13l2.5-2.5h6A4 4 0 0 1 15 7zM16 10h.01",
  files: "M4 4h6l2 2h8v13H4zM4 9h16",
};

export default function Icon({ name, size = 16 }: { name: keyof typeof PATHS | string; size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <path d={PATHS[name] ?? ""} />
    </svg>
  );
}
