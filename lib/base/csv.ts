// CSV as this package writes and reads it (RFC 4180): fields separated by commas, records by LF
// (CRLF read too); a field holding a comma, quote, CR or LF is quoted, with quotes doubled. A field may
// therefore span lines: an image named "a\nb.png" is one cell, not two rows. Reading never throws:
// any text is some list of records (a quote left open at the end closes there), so callers decide
// what a malformed row means for them.

/** One field, quoted when it has to be. */
export function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One record; a lone empty field is written as "" so that it is not read back as a blank line. */
export function csvRow(cells: readonly string[]): string {
  if (cells.length === 1 && cells[0] === '') return '""';
  return cells.map(csvCell).join(',');
}

/** Records joined by LF, with a final LF. */
export function formatCsv(rows: readonly (readonly string[])[]): string {
  return rows.map((row) => `${csvRow(row)}\n`).join('');
}

export interface CsvRecords {
  records: string[][];
  /** False when the text ends inside a record (no final line break): e.g. a write cut short. */
  complete: boolean;
}

/** Splits CSV text into records of fields; blank lines are skipped. */
export function parseCsv(text: string): CsvRecords {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  // Whether the current record has anything (a blank line has neither a field nor a comma).
  let started = false;
  const endRecord = (): void => {
    if (started) {
      record.push(field);
      records.push(record);
    }
    record = [];
    field = '';
    started = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch !== '"') {
        field += ch;
      } else if (text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else {
        quoted = false;
      }
    } else if (ch === '"' && field.length === 0) {
      quoted = true;
      started = true;
    } else if (ch === ',') {
      record.push(field);
      field = '';
      started = true;
    } else if (ch === '\n' || ch === '\r') {
      endRecord();
      if (ch === '\r' && text[i + 1] === '\n') i += 1;
    } else {
      field += ch;
      started = true;
    }
  }
  const complete = !started && !quoted;
  endRecord();
  return { records, complete };
}
