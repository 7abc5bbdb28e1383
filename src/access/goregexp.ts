// Go's regexp, for the topic and channel patterns of NSQ auth answers: nsqd
// compiles them with regexp.Compile (RE2 syntax, Perl flags) and applies them
// with MatchString (unanchored). JavaScript's RegExp differs in syntax (it has
// backreferences and lookaround, Go has `(?P<n>)`, `\z`, `\Q..\E`, `[[:alpha:]]`,
// literal `{` where no repeat parses, ASCII-only `\s`) and, worse, backtracks:
// `(a|a)*b` against a 64-character topic would never finish. So this is Go's
// parser (same accepted language, same error texts) in front of a Thompson
// NFA simulation: time linear in pattern size × input length, whatever the
// pattern. JavaScript RegExp is used only to test one character against one
// class (`\p{Greek}`, case folding under `(?i)`), which cannot backtrack.

import { err, ok, type Result } from "../result.ts";

/** Programs larger than this are refused (Go allows more; no auth pattern needs it). */
export const MAX_PROGRAM_SIZE = 50_000;
/** Go's maxHeight: deeper nesting is "expression nests too deeply". */
const MAX_DEPTH = 1000;
/** Go's limit on a counted repetition, and on nested counted repetitions together. */
const MAX_REPEAT = 1000;
/** What Go's parseInt makes of a repeat count of more than 8 digits. */
const TOO_BIG = -2;
/** Inputs remembered per compiled pattern, with their outcome. */
const MATCH_MEMO_LIMIT = 4096;

// Go's regexp/syntax ErrorCode texts.
const ERR_INVALID_CHAR_RANGE = "invalid character class range";
const ERR_INVALID_ESCAPE = "invalid escape sequence";
const ERR_INVALID_NAMED_CAPTURE = "invalid named capture";
const ERR_INVALID_PERL_OP = "invalid or unsupported Perl syntax";
const ERR_INVALID_REPEAT_OP = "invalid nested repetition operator";
const ERR_INVALID_REPEAT_SIZE = "invalid repeat count";
const ERR_MISSING_BRACKET = "missing closing ]";
const ERR_MISSING_PAREN = "missing closing )";
const ERR_MISSING_REPEAT_ARGUMENT = "missing argument to repetition operator";
const ERR_TRAILING_BACKSLASH = "trailing backslash at end of expression";
const ERR_UNEXPECTED_PAREN = "unexpected )";
const ERR_NESTING_DEPTH = "expression nests too deeply";
const ERR_LARGE = "expression too large";

class SyntaxError_ extends Error {
  constructor(code: string, expr: string) {
    super(`error parsing regexp: ${code}: \`${expr}\``);
  }
}

// ---- Character sets -------------------------------------------------------

/** One code point test, precomputed for ASCII (every topic and channel name is ASCII). */
export interface CharSet {
  readonly ascii: Uint8Array;
  readonly other: (cp: number) => boolean;
}

type Range = readonly [number, number];

/** A member of a class: code point ranges, or a Unicode property, maybe negated. */
type ClassItem =
  | { kind: "ranges"; ranges: readonly Range[]; negated: boolean }
  | { kind: "property"; source: string; negated: boolean }
  | { kind: "any"; negated: boolean };

const hex = (cp: number): string => `\\u{${cp.toString(16)}}`;

/** A JavaScript test of one character against a positive item, folded or not. */
function itemTest(item: ClassItem, fold: boolean): (ch: string) => boolean {
  if (item.kind === "any") return () => true;
  const source = item.kind === "property"
    ? item.source
    : item.ranges.map(([lo, hi]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`)).join("");
  if (source === "") return () => false;
  // One bracket class over one character: no backtracking is possible.
  const re = new RegExp(`^[${source}]$`, fold ? "iu" : "u");
  return (ch) => re.test(ch);
}

/**
 * The class [items] (negated as a whole when `negated`), folding each item
 * first under (?i) and negating afterwards, as Go's appendGroup/negateClass do.
 */
function charSet(items: readonly ClassItem[], negated: boolean, fold: boolean): CharSet {
  const tests = items.map((item) => {
    const test = itemTest(item, fold);
    return item.negated ? (ch: string) => !test(ch) : test;
  });
  const member = (cp: number): boolean => {
    const ch = String.fromCodePoint(cp);
    let found = false;
    for (const test of tests) {
      if (test(ch)) {
        found = true;
        break;
      }
    }
    return found !== negated;
  };
  const ascii = new Uint8Array(128);
  for (let cp = 0; cp < 128; cp++) ascii[cp] = member(cp) ? 1 : 0;
  return { ascii, other: member };
}

function literalSet(cp: number, fold: boolean): CharSet {
  if (!fold) {
    const ascii = new Uint8Array(128);
    if (cp < 128) ascii[cp] = 1;
    return { ascii, other: (c) => c === cp };
  }
  return charSet([{ kind: "ranges", ranges: [[cp, cp]], negated: false }], false, true);
}

const ANY_CHAR: CharSet = { ascii: new Uint8Array(128).fill(1), other: () => true };
const ANY_CHAR_NOT_NL: CharSet = (() => {
  const ascii = new Uint8Array(128).fill(1);
  ascii[10] = 0;
  return { ascii, other: () => true };
})();

const PERL_GROUPS: Record<string, Range[]> = {
  d: [[0x30, 0x39]],
  s: [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]],
  w: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
};

const POSIX_GROUPS: Record<string, Range[]> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

/** Go's unicode.Categories keys. */
const CATEGORIES: ReadonlySet<string> = new Set(
  ("C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps " +
    "S Sc Sk Sm So Z Zl Zp Zs").split(" "),
);

/** Go's unicodeTable: a category, a script, or Any; undefined when Go has no such table. */
function unicodeItem(name: string, negated: boolean): ClassItem | undefined {
  if (name === "Any") return { kind: "any", negated };
  let source: string;
  if (CATEGORIES.has(name)) source = `\\p{${name}}`;
  else if (/^[A-Za-z_]+$/.test(name)) source = `\\p{Script=${name}}`;
  else return undefined;
  try {
    new RegExp(`[${source}]`, "u");
  } catch {
    return undefined;
  }
  return { kind: "property", source, negated };
}

// ---- Syntax tree ----------------------------------------------------------

type Assertion =
  | "beginText"
  | "endText"
  | "beginLine"
  | "endLine"
  | "wordBoundary"
  | "noWordBoundary";

type Node =
  | { op: "empty" }
  | { op: "char"; set: CharSet }
  | { op: "assert"; kind: Assertion }
  | { op: "concat"; subs: Node[] }
  | { op: "alternate"; subs: Node[] }
  /** `counted`: written `{n,m}` (Go's OpRepeat), which the nested-size rule looks at. */
  | { op: "repeat"; sub: Node; min: number; max: number; counted: boolean };

interface Flags {
  fold: boolean;
  /** `(?m)`: ^ and $ match at line boundaries. */
  multiLine: boolean;
  /** `(?s)`: . matches \n. */
  dotNL: boolean;
}

const isAlnum = (c: string): boolean => /^[0-9A-Za-z]$/.test(c);
const isOctal = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "7";
const hexValue = (c: string | undefined): number =>
  c !== undefined && /^[0-9A-Fa-f]$/.test(c) ? parseInt(c, 16) : -1;

/** Go's regexp/syntax parser with the Perl flags regexp.Compile uses. */
class Parser {
  readonly #chars: string[];
  #pos = 0;

  constructor(pattern: string) {
    this.#chars = Array.from(pattern);
  }

  /** The pattern text from `from` to `to` (default: the end), for error messages and searches. */
  #text(from: number, to = this.#chars.length): string {
    return this.#chars.slice(from, to).join("");
  }

  #indexOf(needle: string, from: number): number {
    const n = Array.from(needle);
    outer: for (let i = from; i + n.length <= this.#chars.length; i++) {
      for (let j = 0; j < n.length; j++) if (this.#chars[i + j] !== n[j]) continue outer;
      return i;
    }
    return -1;
  }

  parse(): Node {
    const node = this.#alternation({ fold: false, multiLine: false, dotNL: false }, 0);
    if (this.#pos < this.#chars.length) {
      // Only a `)` stops the top level early.
      throw new SyntaxError_(ERR_UNEXPECTED_PAREN, this.#text(0));
    }
    return node;
  }

  /** Alternatives up to a `)` or the end; `(?flags)` changes `flags` for the rest of the group. */
  #alternation(flags: Flags, depth: number): Node {
    if (depth > MAX_DEPTH) throw new SyntaxError_(ERR_NESTING_DEPTH, this.#text(0));
    const branches: Node[] = [];
    let items: Node[] = [];
    let lastRepeat = -1;
    const chars = this.#chars;
    while (this.#pos < chars.length) {
      const c = chars[this.#pos];
      let repeatStart = -1;
      if (c === ")") break;
      switch (c) {
        case "(": {
          const group = this.#group(flags, depth);
          if (group !== undefined) items.push(group);
          break;
        }
        case "|":
          this.#pos++;
          branches.push(concat(items));
          items = [];
          break;
        case "^":
          this.#pos++;
          items.push({ op: "assert", kind: flags.multiLine ? "beginLine" : "beginText" });
          break;
        case "$":
          this.#pos++;
          items.push({ op: "assert", kind: flags.multiLine ? "endLine" : "endText" });
          break;
        case ".":
          this.#pos++;
          items.push({ op: "char", set: flags.dotNL ? ANY_CHAR : ANY_CHAR_NOT_NL });
          break;
        case "[":
          items.push({ op: "char", set: this.#class(flags) });
          break;
        case "*":
        case "+":
        case "?": {
          repeatStart = this.#pos;
          this.#pos++;
          const [min, max] = c === "*" ? [0, -1] : c === "+" ? [1, -1] : [0, 1];
          this.#repeat(items, min, max, false, repeatStart, lastRepeat);
          break;
        }
        case "{": {
          const parsed = this.#repeatBraces(this.#pos);
          if (parsed === undefined) {
            // A `{` that starts no repeat is a literal.
            this.#pos++;
            items.push({ op: "char", set: literalSet(0x7b, flags.fold) });
            break;
          }
          repeatStart = this.#pos;
          const { min, max, end } = parsed;
          if (min < 0 || min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && min > max)) {
            throw new SyntaxError_(ERR_INVALID_REPEAT_SIZE, this.#text(this.#pos, end));
          }
          this.#pos = end;
          this.#repeat(items, min, max, true, repeatStart, lastRepeat);
          break;
        }
        case "\\":
          this.#escapeAtom(items, flags);
          break;
        default:
          this.#pos++;
          items.push({ op: "char", set: literalSet(c.codePointAt(0)!, flags.fold) });
      }
      lastRepeat = repeatStart;
    }
    branches.push(concat(items));
    return branches.length === 1 ? branches[0] : { op: "alternate", subs: branches };
  }

  /** `(`…`)` in its forms; undefined for a bare flag change `(?i)`, which adds nothing. */
  #group(flags: Flags, depth: number): Node | undefined {
    const chars = this.#chars;
    const start = this.#pos;
    let inner = { ...flags };
    if (chars[start + 1] === "?") {
      if (chars[start + 2] === "P" && chars[start + 3] === "<") {
        const end = this.#indexOf(">", start);
        if (end < 0) throw new SyntaxError_(ERR_INVALID_NAMED_CAPTURE, this.#text(start));
        const name = this.#text(start + 4, end);
        if (!/^[0-9A-Za-z_]+$/.test(name)) {
          throw new SyntaxError_(ERR_INVALID_NAMED_CAPTURE, this.#text(start, end + 1));
        }
        this.#pos = end + 1;
      } else {
        const parsed = this.#perlFlags(flags, start);
        if (parsed.close) {
          // `(?i)` applies to the rest of the enclosing group.
          Object.assign(flags, parsed.flags);
          return undefined;
        }
        inner = parsed.flags;
      }
    } else {
      this.#pos++;
    }
    const sub = this.#alternation(inner, depth + 1);
    if (this.#pos >= chars.length) throw new SyntaxError_(ERR_MISSING_PAREN, this.#text(0));
    this.#pos++; // the `)`
    return sub;
  }

  /** `(?flags)` or `(?flags:`; flags are i, m, s, U, with one `-` negating those after it. */
  #perlFlags(flags: Flags, start: number): { flags: Flags; close: boolean } {
    const chars = this.#chars;
    const next = { ...flags };
    let negate = false;
    let sawFlag = false;
    for (let i = start + 2; i < chars.length; i++) {
      const c = chars[i];
      switch (c) {
        case "i":
          next.fold = !negate;
          sawFlag = true;
          continue;
        case "m":
          next.multiLine = !negate;
          sawFlag = true;
          continue;
        case "s":
          next.dotNL = !negate;
          sawFlag = true;
          continue;
        case "U":
          // Ungreedy: no effect on whether a pattern matches.
          sawFlag = true;
          continue;
        case "-":
          if (negate) break;
          negate = true;
          sawFlag = false;
          continue;
        case ":":
        case ")":
          if (negate && !sawFlag) break;
          this.#pos = i + 1;
          return { flags: next, close: c === ")" };
      }
      throw new SyntaxError_(ERR_INVALID_PERL_OP, this.#text(start, i + 1));
    }
    throw new SyntaxError_(ERR_MISSING_PAREN, this.#text(start));
  }

  /** Go's parseRepeat on `{n}`, `{n,}`, `{n,m}`; undefined when the text is no repeat. */
  #repeatBraces(at: number): { min: number; max: number; end: number } | undefined {
    const chars = this.#chars;
    let i = at + 1;
    const int = (): number | undefined => {
      const first = chars[i];
      if (first === undefined || first < "0" || first > "9") return undefined;
      // No leading zeros.
      if (
        first === "0" && chars[i + 1] !== undefined && chars[i + 1] >= "0" && chars[i + 1] <= "9"
      ) {
        return undefined;
      }
      let n = 0;
      while (chars[i] !== undefined && chars[i] >= "0" && chars[i] <= "9") {
        // Go stops counting at 1e8 and reports the number as too big (-1).
        if (n >= 0) n = n >= 1e8 ? TOO_BIG : n * 10 + Number(chars[i]);
        i++;
      }
      return n;
    };
    const min = int();
    if (min === undefined || i >= chars.length) return undefined;
    let max: number;
    if (chars[i] !== ",") max = min;
    else {
      i++;
      if (i >= chars.length) return undefined;
      if (chars[i] === "}") max = -1;
      else {
        const parsed = int();
        if (parsed === undefined) return undefined;
        max = parsed;
      }
    }
    if (chars[i] !== "}") return undefined;
    // A count too big for Go's parseInt makes the repeat invalid, not literal.
    return { min: max < -1 ? -1 : min, max, end: i + 1 };
  }

  /** Applies a repetition to the last item (Go's p.repeat). */
  #repeat(
    items: Node[],
    min: number,
    max: number,
    counted: boolean,
    start: number,
    lastRepeat: number,
  ): void {
    // A trailing `?` makes it non-greedy, which does not change whether it matches.
    if (this.#chars[this.#pos] === "?") this.#pos++;
    if (lastRepeat >= 0) {
      throw new SyntaxError_(ERR_INVALID_REPEAT_OP, this.#text(lastRepeat, this.#pos));
    }
    if (items.length === 0) {
      throw new SyntaxError_(ERR_MISSING_REPEAT_ARGUMENT, this.#text(start, this.#pos));
    }
    const node: Node = { op: "repeat", sub: items[items.length - 1], min, max, counted };
    if (counted && (min >= 2 || max >= 2) && !repeatIsValid(node, MAX_REPEAT)) {
      throw new SyntaxError_(ERR_INVALID_REPEAT_SIZE, this.#text(start, this.#pos));
    }
    items[items.length - 1] = node;
  }

  /** A `\` outside a class: assertion, \Q…\E, class escape or one escaped character. */
  #escapeAtom(items: Node[], flags: Flags): void {
    const chars = this.#chars;
    const next = chars[this.#pos + 1];
    const assertions: Record<string, Assertion> = {
      A: "beginText",
      z: "endText",
      b: "wordBoundary",
      B: "noWordBoundary",
    };
    if (next !== undefined && Object.hasOwn(assertions, next)) {
      this.#pos += 2;
      items.push({ op: "assert", kind: assertions[next] });
      return;
    }
    if (next === "C") throw new SyntaxError_(ERR_INVALID_ESCAPE, "\\C");
    if (next === "Q") {
      const end = this.#indexOf("\\E", this.#pos + 2);
      const stop = end < 0 ? chars.length : end;
      for (let i = this.#pos + 2; i < stop; i++) {
        items.push({ op: "char", set: literalSet(chars[i].codePointAt(0)!, flags.fold) });
      }
      this.#pos = end < 0 ? chars.length : end + 2;
      return;
    }
    const unicode = this.#unicodeClass();
    if (unicode !== undefined) {
      items.push({ op: "char", set: charSet([unicode], false, flags.fold) });
      return;
    }
    const perl = this.#perlClass();
    if (perl !== undefined) {
      items.push({ op: "char", set: charSet([perl], false, flags.fold) });
      return;
    }
    items.push({ op: "char", set: literalSet(this.#escape(), flags.fold) });
  }

  /** `\d \D \s \S \w \W` at the position, consumed; undefined otherwise. */
  #perlClass(): ClassItem | undefined {
    const name = this.#chars[this.#pos + 1];
    if (this.#chars[this.#pos] !== "\\" || name === undefined || !/^[dswDSW]$/.test(name)) {
      return undefined;
    }
    this.#pos += 2;
    const lower = name.toLowerCase();
    return { kind: "ranges", ranges: PERL_GROUPS[lower], negated: name !== lower };
  }

  /** `\pL`, `\p{Greek}`, `\P{^Lu}` at the position, consumed; undefined otherwise. */
  #unicodeClass(): ClassItem | undefined {
    const chars = this.#chars;
    const start = this.#pos;
    const p = chars[start + 1];
    if (chars[start] !== "\\" || (p !== "p" && p !== "P")) return undefined;
    let negated = p === "P";
    let name: string;
    let end: number;
    if (chars[start + 2] !== "{") {
      name = chars[start + 2] ?? "";
      end = Math.min(start + 3, chars.length);
    } else {
      const close = this.#indexOf("}", start);
      if (close < 0) throw new SyntaxError_(ERR_INVALID_CHAR_RANGE, this.#text(start));
      name = this.#text(start + 3, close);
      end = close + 1;
    }
    if (name.startsWith("^")) {
      negated = !negated;
      name = name.slice(1);
    }
    const item = unicodeItem(name, negated);
    if (item === undefined) throw new SyntaxError_(ERR_INVALID_CHAR_RANGE, this.#text(start, end));
    this.#pos = end;
    return item;
  }

  /** Go's parseEscape: the code point of the escape at the position, consumed. */
  #escape(): number {
    const chars = this.#chars;
    const start = this.#pos;
    let i = start + 1;
    const c = chars[i++];
    if (c === undefined) throw new SyntaxError_(ERR_TRAILING_BACKSLASH, "");
    const bad = (): never => {
      throw new SyntaxError_(ERR_INVALID_ESCAPE, this.#text(start, i));
    };
    if ((c >= "1" && c <= "7" && isOctal(chars[i])) || c === "0") {
      // Up to three octal digits; a lone 1-7 would be a backreference, which Go refuses.
      let value = Number(c);
      for (let n = 1; n < 3 && isOctal(chars[i]); n++) value = value * 8 + Number(chars[i++]);
      this.#pos = i;
      return value;
    }
    if (c === "x") {
      if (chars[i] === "{") {
        i++;
        let value = 0;
        let digits = 0;
        for (;;) {
          const d = chars[i++];
          if (d === undefined) return bad();
          if (d === "}") break;
          const v = hexValue(d);
          if (v < 0) return bad();
          value = value * 16 + v;
          if (value > 0x10ffff) return bad();
          digits++;
        }
        if (digits === 0) return bad();
        this.#pos = i;
        return value;
      }
      const high = hexValue(chars[i++]);
      const low = hexValue(chars[i++]);
      if (high < 0 || low < 0) return bad();
      this.#pos = i;
      return high * 16 + low;
    }
    const simple: Record<string, number> = { a: 7, f: 12, n: 10, r: 13, t: 9, v: 11 };
    if (Object.hasOwn(simple, c)) {
      this.#pos = i;
      return simple[c];
    }
    // Escaped punctuation is itself; escaped letters and digits mean nothing else.
    if (c.codePointAt(0)! < 0x80 && !isAlnum(c)) {
      this.#pos = i;
      return c.codePointAt(0)!;
    }
    return bad();
  }

  /** `[…]` (Go's parseClass with Perl flags: `-` may appear anywhere, negation includes \n). */
  #class(flags: Flags): CharSet {
    const chars = this.#chars;
    const start = this.#pos;
    let i = start + 1;
    let negated = false;
    if (chars[i] === "^") {
      negated = true;
      i++;
    }
    const items: ClassItem[] = [];
    const ranges: Range[] = [];
    let first = true;
    while (i >= chars.length || chars[i] !== "]" || first) {
      if (i >= chars.length) throw new SyntaxError_(ERR_MISSING_BRACKET, this.#text(start));
      first = false;
      if (chars[i] === "[" && chars[i + 1] === ":") {
        const close = this.#indexOf(":]", i + 2);
        if (close >= 0) {
          const name = this.#text(i + 2, close);
          const negatedGroup = name.startsWith("^");
          const base = negatedGroup ? name.slice(1) : name;
          if (!Object.hasOwn(POSIX_GROUPS, base)) {
            throw new SyntaxError_(ERR_INVALID_CHAR_RANGE, this.#text(i, close + 2));
          }
          items.push({ kind: "ranges", ranges: POSIX_GROUPS[base], negated: negatedGroup });
          i = close + 2;
          continue;
        }
      }
      this.#pos = i;
      const unicode = this.#unicodeClass() ?? this.#perlClass();
      if (unicode !== undefined) {
        items.push(unicode);
        i = this.#pos;
        continue;
      }
      const rangeStart = i;
      const lo = this.#classChar(i, start);
      i = this.#pos;
      let hi = lo;
      // `[a-]` is a and -; `-` before `]` is no range.
      if (chars[i] === "-" && i + 1 < chars.length && chars[i + 1] !== "]") {
        hi = this.#classChar(i + 1, start);
        if (hi < lo) {
          throw new SyntaxError_(ERR_INVALID_CHAR_RANGE, this.#text(rangeStart, this.#pos));
        }
        i = this.#pos;
      }
      ranges.push([lo, hi]);
    }
    this.#pos = i + 1;
    if (ranges.length > 0) items.push({ kind: "ranges", ranges, negated: false });
    return charSet(items, negated, flags.fold);
  }

  /** One class character at `i` (maybe escaped), consumed: Go's parseClassChar. */
  #classChar(i: number, classStart: number): number {
    const c = this.#chars[i];
    if (c === undefined) throw new SyntaxError_(ERR_MISSING_BRACKET, this.#text(classStart));
    this.#pos = i;
    if (c === "\\") return this.#escape();
    this.#pos = i + 1;
    return c.codePointAt(0)!;
  }
}

function concat(items: Node[]): Node {
  if (items.length === 0) return { op: "empty" };
  return items.length === 1 ? items[0] : { op: "concat", subs: items };
}

/** Go's repeatIsValid: nested counted repetitions multiply to at most `n`. */
function repeatIsValid(node: Node, n: number): boolean {
  if (node.op === "repeat" && node.counted) {
    let m = node.max;
    if (m === 0) return true;
    if (m < 0) m = node.min;
    if (m > n) return false;
    if (m > 0) n = Math.floor(n / m);
  }
  switch (node.op) {
    case "concat":
    case "alternate":
      return node.subs.every((sub) => repeatIsValid(sub, n));
    case "repeat":
      return repeatIsValid(node.sub, n);
    default:
      return true;
  }
}

// ---- Program and simulation -----------------------------------------------

const OP_CHAR = 0;
const OP_SPLIT = 1;
const OP_ASSERT = 2;
const OP_MATCH = 3;

interface Instruction {
  op: number;
  next: number;
  /** OP_SPLIT's second branch. */
  alt: number;
  set: CharSet | undefined;
  assertion: Assertion | undefined;
}

class Compiler {
  readonly program: Instruction[] = [];

  #emit(op: number, set?: CharSet, assertion?: Assertion): number {
    if (this.program.length >= MAX_PROGRAM_SIZE) throw new SyntaxError_(ERR_LARGE, "");
    this.program.push({ op, next: -1, alt: -1, set, assertion });
    return this.program.length - 1;
  }

  /**
   * Compiles `node` so that it continues at `next`; returns its entry. Built
   * back to front, so every jump target exists when it is emitted.
   */
  compile(node: Node, next: number): number {
    switch (node.op) {
      case "empty":
        return next;
      case "char": {
        const at = this.#emit(OP_CHAR, node.set);
        this.program[at].next = next;
        return at;
      }
      case "assert": {
        const at = this.#emit(OP_ASSERT, undefined, node.kind);
        this.program[at].next = next;
        return at;
      }
      case "concat": {
        let entry = next;
        for (let i = node.subs.length - 1; i >= 0; i--) entry = this.compile(node.subs[i], entry);
        return entry;
      }
      case "alternate": {
        let entry = this.compile(node.subs[node.subs.length - 1], next);
        for (let i = node.subs.length - 2; i >= 0; i--) {
          const first = this.compile(node.subs[i], next);
          entry = this.#split(first, entry);
        }
        return entry;
      }
      case "repeat":
        return this.#repeat(node.sub, node.min, node.max, next);
    }
  }

  #split(a: number, b: number): number {
    const at = this.#emit(OP_SPLIT);
    this.program[at].next = a;
    this.program[at].alt = b;
    return at;
  }

  #repeat(sub: Node, min: number, max: number, next: number): number {
    let entry = next;
    if (max < 0) {
      // sub*: a loop through a split that either runs sub once more or leaves.
      const loop = this.#emit(OP_SPLIT);
      const body = this.compile(sub, loop);
      this.program[loop].next = body;
      this.program[loop].alt = next;
      entry = loop;
    } else {
      // (sub(sub(sub)?)?)? for the optional copies.
      for (let i = 0; i < max - min; i++) entry = this.#split(this.compile(sub, entry), next);
    }
    for (let i = 0; i < min; i++) entry = this.compile(sub, entry);
    return entry;
  }
}

const isWordChar = (cp: number): boolean =>
  (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a) ||
  cp === 0x5f;

function assertionHolds(kind: Assertion, input: Int32Array, pos: number): boolean {
  const before = pos > 0 ? input[pos - 1] : -1;
  const after = pos < input.length ? input[pos] : -1;
  switch (kind) {
    case "beginText":
      return pos === 0;
    case "endText":
      return pos === input.length;
    case "beginLine":
      return pos === 0 || before === 10;
    case "endLine":
      return pos === input.length || after === 10;
    case "wordBoundary":
      return isWordChar(before) !== isWordChar(after);
    case "noWordBoundary":
      return isWordChar(before) === isWordChar(after);
  }
}

/** A compiled pattern; `matchString` is Go's (unanchored) MatchString. */
export class GoRegexp {
  readonly source: string;
  readonly #program: Instruction[];
  readonly #start: number;
  readonly #memo = new Map<string, boolean>();
  // Scratch space for the simulation, reused across calls.
  readonly #seen: Int32Array;
  #generation = 0;
  #current: Int32Array;
  #next: Int32Array;
  readonly #stack: Int32Array;

  /**
   * True when the pattern surely matches every string: it matches the empty
   * string at the start whatever follows (`""`, `.*`, `^`, `x?`). A sufficient
   * test, not a complete one (`.+` is not recognised): callers use it to skip
   * per-name checks, never to refuse.
   */
  readonly matchesEverything: boolean;

  constructor(source: string, program: Instruction[], start: number) {
    this.source = source;
    this.#program = program;
    this.#start = start;
    this.#seen = new Int32Array(program.length);
    this.#current = new Int32Array(program.length);
    this.#next = new Int32Array(program.length);
    this.#stack = new Int32Array(program.length + 1);
    this.matchesEverything = this.#matchesEmptyPrefix();
  }

  /** Whether the match state is reachable at position 0 through assertions true of any text there. */
  #matchesEmptyPrefix(): boolean {
    const seen = new Set<number>();
    const stack = [this.#start];
    while (stack.length > 0) {
      const at = stack.pop()!;
      if (seen.has(at)) continue;
      seen.add(at);
      const inst = this.#program[at];
      if (inst.op === OP_MATCH) return true;
      if (inst.op === OP_SPLIT) stack.push(inst.next, inst.alt);
      const always = inst.assertion === "beginText" || inst.assertion === "beginLine";
      if (inst.op === OP_ASSERT && always) stack.push(inst.next);
    }
    return false;
  }

  /** Number of instructions: the cost factor of each match. */
  get size(): number {
    return this.#program.length;
  }

  matchString(text: string): boolean {
    const known = this.#memo.get(text);
    if (known !== undefined) return known;
    const found = this.#simulate(text);
    if (this.#memo.size >= MATCH_MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(text, found);
    return found;
  }

  #simulate(text: string): boolean {
    const input = Int32Array.from(text, (ch) => ch.codePointAt(0)!);
    let count = 0;
    let nextCount = 0;
    this.#generation++;
    if (this.#addClosure(this.#start, input, 0, this.#current, 0, (n) => (count = n))) return true;
    for (let pos = 0; pos < input.length; pos++) {
      const cp = input[pos];
      this.#generation++;
      nextCount = 0;
      const setNext = (n: number): number => (nextCount = n);
      for (let i = 0; i < count; i++) {
        const inst = this.#program[this.#current[i]];
        const set = inst.set!;
        const hit = cp < 128 ? set.ascii[cp] === 1 : set.other(cp);
        if (hit && this.#addClosure(inst.next, input, pos + 1, this.#next, nextCount, setNext)) {
          return true;
        }
      }
      // Unanchored: a match may also start at the next position.
      if (this.#addClosure(this.#start, input, pos + 1, this.#next, nextCount, setNext)) {
        return true;
      }
      const swap = this.#current;
      this.#current = this.#next;
      this.#next = swap;
      count = nextCount;
    }
    return false;
  }

  /**
   * Adds the character-consuming states reachable from `from` at `pos` to
   * `list` (each once per step); true as soon as the match state is reached.
   */
  #addClosure(
    from: number,
    input: Int32Array,
    pos: number,
    list: Int32Array,
    length: number,
    setLength: (n: number) => number,
  ): boolean {
    const program = this.#program;
    const seen = this.#seen;
    const generation = this.#generation;
    const stack = this.#stack;
    let top = 0;
    stack[top++] = from;
    while (top > 0) {
      const at = stack[--top];
      if (seen[at] === generation) continue;
      seen[at] = generation;
      const inst = program[at];
      switch (inst.op) {
        case OP_MATCH:
          setLength(length);
          return true;
        case OP_CHAR:
          list[length++] = at;
          break;
        case OP_SPLIT:
          stack[top++] = inst.alt;
          stack[top++] = inst.next;
          break;
        case OP_ASSERT:
          if (assertionHolds(inst.assertion!, input, pos)) stack[top++] = inst.next;
          break;
      }
    }
    setLength(length);
    return false;
  }
}

/** Go's regexp.Compile: the pattern, or Go's error text. */
export function compileGoRegexp(pattern: string): Result<GoRegexp> {
  try {
    const tree = new Parser(pattern).parse();
    const compiler = new Compiler();
    const match = compiler.program.length;
    compiler.program.push({
      op: OP_MATCH,
      next: -1,
      alt: -1,
      set: undefined,
      assertion: undefined,
    });
    const start = compiler.compile(tree, match);
    return ok(new GoRegexp(pattern, compiler.program, start));
  } catch (error) {
    if (error instanceof SyntaxError_) return err(error.message);
    if (error instanceof RangeError) {
      // Stack exhausted on a pathological pattern: refused, never a crash.
      return err(`error parsing regexp: ${ERR_NESTING_DEPTH}: \`${pattern.slice(0, 40)}\``);
    }
    throw error;
  }
}
