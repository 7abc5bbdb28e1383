import assert from "node:assert/strict";
import { compileGoRegexp, MAX_PROGRAM_SIZE } from "../../../src/access/goregexp.ts";

function matches(pattern: string, input: string): boolean {
  const compiled = compileGoRegexp(pattern);
  assert.ok(compiled.ok, `${pattern}: ${JSON.stringify(compiled)}`);
  return compiled.ok && compiled.value.matchString(input);
}

function check(pattern: string, yes: string[], no: string[]): void {
  for (const input of yes) assert.ok(matches(pattern, input), `${pattern} should match ${input}`);
  for (const input of no) {
    assert.ok(!matches(pattern, input), `${pattern} should not match ${input}`);
  }
}

function refused(pattern: string, message: string): void {
  assert.deepEqual(compileGoRegexp(pattern), {
    ok: false,
    error: `error parsing regexp: ${message}`,
  }, pattern);
}

Deno.test("goregexp: matching is unanchored, as Go's MatchString", () => {
  check("clicks", ["clicks", "my_clicks_2", "clicks#ephemeral"], ["click", "CLICKS"]);
  check("", ["", "anything"], []);
  check(".*", ["", "x"], []);
  check("^clicks$", ["clicks"], ["clicks2", "xclicks", "clicks\n"]);
});

Deno.test("goregexp: $ without (?m) is the end of the text only (no Perl newline rule)", () => {
  check("a$", ["ba"], ["a\n"]);
  check("\\Aa\\z", ["a"], ["a\n", "ba"]);
  check("(?m)^b$", ["a\nb\nc", "b"], ["abc"]);
  check("(?m:^b)$", ["x\nb"], ["x\nbc"]);
});

Deno.test("goregexp: . excludes newline unless (?s); negated classes include it", () => {
  check("^.$", ["a", "é"], ["\n"]);
  check("(?s)^.$", ["\n"], []);
  check("^[^a]$", ["\n", "b"], ["a"]);
});

Deno.test("goregexp: repetitions, counted and not, greedy or lazy", () => {
  check("^a{2,3}$", ["aa", "aaa"], ["a", "aaaa"]);
  check("^a{2}$", ["aa"], ["a", "aaa"]);
  check("^a{2,}$", ["aa", "aaaaaaaa"], ["a"]);
  check("^a{0}b$", ["b"], ["ab"]);
  check("^(ab)+?$", ["ab", "abab"], ["", "aba"]);
  check("^a*?$", ["", "aaa"], ["b"]);
  check("^a??b$", ["b", "ab"], ["aab"]);
  check("^(?U)a+$", ["aaa"], [""]);
});

Deno.test("goregexp: a { that starts no repeat is a literal, as in Go", () => {
  check("^x{,3}$", ["x{,3}"], ["xxx"]);
  check("^a{$", ["a{"], []);
  check("^a{1$", ["a{1"], []);
  check("^a{1,2$", ["a{1,2"], []);
  check("^a{01}$", ["a{01}"], ["a"]);
  // After an operand, it is a repeat, even of an assertion; with nothing before, an error.
  check("^{2}$", [""], ["{2}"]);
  refused("{2}", "missing argument to repetition operator: `{2}`");
});

Deno.test("goregexp: case folding under (?i) covers Unicode simple folds", () => {
  check("(?i)^ab$", ["AB", "aB", "ab"], ["abc"]);
  check("(?i)k", ["K", "k", "\u212a"], []);
  check("(?i)^[a-c]+$", ["ABC", "bca"], ["abd"]);
  check("(?i)^[^a]$", ["b"], ["A", "a"]);
  check("^(?i:a)b$", ["Ab"], ["AB"]);
  check("(?i)a(?-i)b", ["Ab"], ["AB"]);
  check("a(?i)b|c", ["aB", "C"], ["AB"]);
});

Deno.test("goregexp: Perl, POSIX and Unicode classes use Go's definitions", () => {
  check("^\\d+$", ["0123"], ["١"]);
  check("^\\s$", [" ", "\t", "\n", "\f", "\r"], ["\v", "\u00a0", "\u2028"]);
  check("^\\w+$", ["ab_9Z"], ["é", "a-b"]);
  check("^\\W$", ["-", "é"], ["a"]);
  check("^[[:alpha:]]+_[[:digit:]]$", ["abc_1"], ["abc_x"]);
  check("^[[:^alpha:]]$", ["1", "-"], ["a"]);
  check("^[[:word:].-]+$", ["a.b-c_d"], ["a b"]);
  check("^\\pL+$", ["é", "abc"], ["1"]);
  check("^\\p{Greek}$", ["α"], ["a"]);
  check("^\\PL$", ["1"], ["a"]);
  check("^\\p{^Lu}$", ["a"], ["A"]);
  check("^\\p{Any}$", ["x", "\n"], []);
  check("^[\\d\\p{Lu}]$", ["1", "A"], ["a"]);
});

Deno.test("goregexp: escapes: octal, hex, C escapes, punctuation and \\Q…\\E", () => {
  check("^\\x41\\x{42}\\101\\0$", ["ABA\0"], []);
  check("^\\t\\n\\r\\f\\v\\a$", ["\t\n\r\f\v\x07"], []);
  check("^\\.\\-\\#$", [".-#"], ["x-#"]);
  check("^\\Qa.b*\\E+$", ["a.b**"], ["axb"]);
  check("^\\Qa.b", ["a.b"], ["axb"]);
  check("^[\\]\\-]+$", ["]-]"], ["a"]);
  check("^[]a]+$", ["]a"], ["b"]);
  check("^[a-]+$", ["a-"], ["b"]);
});

Deno.test("goregexp: word boundaries are ASCII", () => {
  check("\\bfoo\\b", ["a foo b", "foo", "x.foo"], ["afoob", "foo_"]);
  check("\\Bfoo", ["afoo"], ["foo"]);
});

Deno.test("goregexp: named groups in Go 1.19's (?P<name>) form only", () => {
  check("^(?P<topic>a+)$", ["aa"], [""]);
  refused("(?<topic>a)", "invalid or unsupported Perl syntax: `(?<`");
  refused("(?P<>a)", "invalid named capture: `(?P<>`");
  refused("(?P<a-b>a)", "invalid named capture: `(?P<a-b>`");
  refused("(?P<name", "invalid named capture: `(?P<name`");
});

Deno.test("goregexp: what JavaScript has and Go refuses is refused", () => {
  refused("(a)\\1", "invalid escape sequence: `\\1`");
  refused("(?=a)", "invalid or unsupported Perl syntax: `(?=`");
  refused("(?!a)", "invalid or unsupported Perl syntax: `(?!`");
  refused("(?<=a)b", "invalid or unsupported Perl syntax: `(?<`");
  refused("a++", "invalid nested repetition operator: `++`");
  refused("\\Z", "invalid escape sequence: `\\Z`");
  refused("\\C", "invalid escape sequence: `\\C`");
  refused("\\u0041", "invalid escape sequence: `\\u`");
  refused("[\\b]", "invalid escape sequence: `\\b`");
});

Deno.test("goregexp: syntax errors carry Go's error texts", () => {
  refused("a**", "invalid nested repetition operator: `**`");
  refused("a{2}{3}", "invalid nested repetition operator: `{2}{3}`");
  refused("*a", "missing argument to repetition operator: `*`");
  refused("a|*", "missing argument to repetition operator: `*`");
  refused("(?i)*", "missing argument to repetition operator: `*`");
  refused("(a", "missing closing ): `(a`");
  refused("a)", "unexpected ): `a)`");
  refused("[a", "missing closing ]: `[a`");
  refused("[z-a]", "invalid character class range: `z-a`");
  refused("[[:foo:]]", "invalid character class range: `[:foo:]`");
  refused("\\pX", "invalid character class range: `\\pX`");
  refused("\\p{Nope}", "invalid character class range: `\\p{Nope}`");
  refused("a{1001}", "invalid repeat count: `{1001}`");
  refused("a{2,1}", "invalid repeat count: `{2,1}`");
  refused("(a{2}){501}", "invalid repeat count: `{501}`");
  refused("\\8", "invalid escape sequence: `\\8`");
  refused("\\x4", "invalid escape sequence: `\\x4`");
  refused("\\x{110000}", "invalid escape sequence: `\\x{110000`");
  refused("(?i-)", "invalid or unsupported Perl syntax: `(?i-)`");
  refused("\\", "trailing backslash at end of expression: ``");
});

Deno.test("goregexp: what Go accepts although it looks odd is accepted", () => {
  for (
    const pattern of [
      "^*",
      "$+",
      "\\b?",
      "a(?i)*",
      "(?)",
      "(?-i)a",
      "(a{2}){500}",
      "(a*)*",
      "(|a)+",
    ]
  ) {
    assert.ok(compileGoRegexp(pattern).ok, pattern);
  }
  // The star repeats the `a` before the flag change, which stays case-sensitive.
  check("^a(?i)*$", ["", "aaa"], ["aAa"]);
});

Deno.test("goregexp: patterns that make a backtracking engine explode take linear time", () => {
  const inputs = ["a".repeat(64), "a".repeat(63) + "!", "ab".repeat(32)];
  for (
    const pattern of ["^(a|a)*$", "^(a*)*b$", "^(a|aa)+$", "(x+x+)+y", "^(\\w+\\s?)*$", "(.*a){20}"]
  ) {
    const compiled = compileGoRegexp(pattern);
    assert.ok(compiled.ok, pattern);
    if (!compiled.ok) continue;
    const started = performance.now();
    for (const input of inputs) compiled.value.matchString(input + "z");
    // Generous bound: a backtracking engine takes years here, not milliseconds.
    assert.ok(performance.now() - started < 1000, pattern);
  }
  check("^(a|a)*$", ["a".repeat(64)], ["a".repeat(63) + "!"]);
  check("(.*a){20}", ["a".repeat(20)], ["a".repeat(19)]);
});

Deno.test("goregexp: programs beyond the size limit are refused, not built", () => {
  refused(`(${"a".repeat(60)}){1000}`, "expression too large: ``");
  const big = `^(${"abcdefgh|".repeat(1000)}z)$`;
  assert.ok(big.length * 1 > MAX_PROGRAM_SIZE / 10);
  assert.ok(compileGoRegexp(big).ok);
});

Deno.test("goregexp: deep nesting is refused like Go's, without exhausting the stack", () => {
  refused(
    "(".repeat(1100) + ")".repeat(1100),
    `expression nests too deeply: \`${"(".repeat(1100)}${")".repeat(1100)}\``,
  );
  assert.ok(compileGoRegexp("(".repeat(500) + "a" + ")".repeat(500)).ok);
});

Deno.test("goregexp: results are remembered per input, within a bound", () => {
  const compiled = compileGoRegexp("^t[0-9]+$");
  assert.ok(compiled.ok);
  if (!compiled.ok) return;
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 10_000; i++) assert.ok(compiled.value.matchString(`t${i}`));
    assert.ok(!compiled.value.matchString("tx"));
  }
});
