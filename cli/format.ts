// Plain-text output of the admin CLI: aligned tables and key/value lists.

export type Cell = string | number | boolean | null | undefined

function text (value: Cell): string {
  if (value === null || value === undefined) return '-'
  if (typeof value === 'boolean') return value ? 'yes' : 'no'
  return String(value)
}

/** Rows as an aligned table under a header line; `(none)` when there are no rows. */
export function table<T extends { [K in keyof T]: Cell }> (rows: T[], columns: Array<[keyof T & string, string]>): string {
  if (rows.length === 0) return '(none)'
  const cells = [columns.map(([, title]) => title), ...rows.map(row => columns.map(([key]) => text(row[key])))]
  const widths = columns.map((_, i) => Math.max(...cells.map(line => line[i]!.length)))
  return cells.map(line => line.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

/** Label: value lines, labels aligned. */
export function fields (pairs: Array<[string, Cell]>): string {
  const width = Math.max(...pairs.map(([label]) => label.length))
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${text(value)}`).join('\n')
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}
