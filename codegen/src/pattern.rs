//! ECMA-262 patterns, translated for a linear-time matcher.
//!
//! JSON Schema patterns are ECMA-262 regular expressions, where `\d`, `\w` and `\b` are ASCII and
//! `.` excludes every line terminator. The gateway matches with the `regex` crate, which never
//! backtracks; this module checks a pattern with `regress` (a real ECMA-262 engine), rewrites it
//! into the `regex` crate's syntax with the same meaning, and refuses what cannot be matched in
//! linear time (lookaround, backreferences) instead of silently matching something else.

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// Not an ECMA-262 regular expression.
    Invalid(String),
    /// Valid, but needs features a linear-time matcher lacks.
    Unsupported(String),
}

const SPACE: &str = r"\t\n\x0B\x0C\r \x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// Translates an ECMA-262 pattern (no flags) into an equivalent `regex`-crate pattern.
pub fn translate(ecma: &str) -> Result<String, PatternError> {
    if let Err(e) = regress::Regex::new(ecma) {
        return Err(PatternError::Invalid(e.to_string()));
    }
    let chars: Vec<char> = ecma.chars().collect();
    let mut out = String::with_capacity(ecma.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                i += 1;
                let Some(&e) = chars.get(i) else {
                    return Err(PatternError::Invalid("trailing backslash".into()));
                };
                i += 1;
                match e {
                    'd' => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str(if in_class {
                        "0-9A-Za-z_"
                    } else {
                        "[0-9A-Za-z_]"
                    }),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' if in_class => out.push_str(SPACE),
                    's' => {
                        out.push('[');
                        out.push_str(SPACE);
                        out.push(']');
                    }
                    'S' => {
                        out.push_str("[^");
                        out.push_str(SPACE);
                        out.push(']');
                    }
                    'b' if in_class => out.push_str(r"\x08"),
                    'b' => out.push_str(r"(?-u:\b)"),
                    'B' => out.push_str(r"(?-u:\B)"),
                    'n' | 'r' | 't' | 'f' => {
                        out.push('\\');
                        out.push(e);
                    }
                    'v' => out.push_str(r"\x0B"),
                    '0' if !chars.get(i).is_some_and(char::is_ascii_digit) => out.push_str(r"\x00"),
                    '1'..='9' if !in_class => {
                        return Err(PatternError::Unsupported(
                            "backreferences need backtracking".into(),
                        ))
                    }
                    'k' if chars.get(i) == Some(&'<') => {
                        return Err(PatternError::Unsupported(
                            "backreferences need backtracking".into(),
                        ))
                    }
                    'c' if chars.get(i).is_some_and(char::is_ascii_alphabetic) => {
                        let ctl = (chars[i] as u32) % 32;
                        i += 1;
                        push_code(&mut out, ctl);
                    }
                    'x' if hex_at(&chars, i, 2).is_some() => {
                        let v = hex_at(&chars, i, 2).unwrap_or(0);
                        i += 2;
                        push_code(&mut out, v);
                    }
                    'u' if hex_at(&chars, i, 4).is_some() => {
                        let mut v = hex_at(&chars, i, 4).unwrap_or(0);
                        i += 4;
                        if (0xD800..0xDC00).contains(&v)
                            && chars.get(i) == Some(&'\\')
                            && chars.get(i + 1) == Some(&'u')
                        {
                            if let Some(lo) =
                                hex_at(&chars, i + 2, 4).filter(|lo| (0xDC00..0xE000).contains(lo))
                            {
                                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                            }
                        }
                        push_code(&mut out, v);
                    }
                    // Unicode property escapes (JSON Schema patterns are read in Unicode mode).
                    'p' | 'P' if chars.get(i) == Some(&'{') => {
                        let Some(close) = chars[i..].iter().position(|&c| c == '}') else {
                            return Err(PatternError::Invalid("unterminated `\\p{`".into()));
                        };
                        let name: String = chars[i + 1..i + close].iter().collect();
                        if name.is_empty()
                            || !name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '=')
                        {
                            return Err(PatternError::Invalid(format!(
                                "`\\{e}{{{name}}}` is not a Unicode property"
                            )));
                        }
                        out.push('\\');
                        out.push(e);
                        out.push('{');
                        out.push_str(&name);
                        out.push('}');
                        i += close + 1;
                    }
                    other => push_literal(&mut out, other),
                }
            }
            '[' if !in_class => {
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("[a&&b]");
                    i += 2;
                    continue;
                }
                if chars.get(i + 1) == Some(&'^') && chars.get(i + 2) == Some(&']') {
                    out.push_str("(?s:.)");
                    i += 3;
                    continue;
                }
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` right after `[` or `[^` closes the class in ECMA (it was handled above),
                // so nothing else to do here.
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
                i += 1;
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if in_class => {
                // `--` is set difference in the regex crate; a literal second `-` must be escaped.
                if out.ends_with('-') && !out.ends_with("\\-") {
                    out.push_str("\\-");
                } else {
                    out.push('-');
                }
                i += 1;
            }
            '.' if !in_class => {
                out.push_str(r"[^\n\r\x{2028}\x{2029}]");
                i += 1;
            }
            '(' if !in_class => {
                let rest: String = chars[i + 1..].iter().take(4).collect();
                if rest.starts_with("?=")
                    || rest.starts_with("?!")
                    || rest.starts_with("?<=")
                    || rest.starts_with("?<!")
                {
                    return Err(PatternError::Unsupported(
                        "lookaround needs backtracking".into(),
                    ));
                }
                if rest.starts_with("?<") {
                    out.push_str("(?P<");
                    i += 3;
                } else {
                    out.push('(');
                    i += 1;
                }
            }
            '{' if !in_class => {
                // A `{` that does not start a quantifier is a literal in ECMA (Annex B).
                let end = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                let is_quantifier = end.is_some_and(|end| {
                    let body: String = chars[i + 1..end].iter().collect();
                    let mut parts = body.splitn(2, ',');
                    let lo = parts.next().unwrap_or("");
                    !lo.is_empty()
                        && lo.bytes().all(|b| b.is_ascii_digit())
                        && parts
                            .next()
                            .is_none_or(|hi| hi.bytes().all(|b| b.is_ascii_digit()))
                });
                if is_quantifier {
                    let end = end.unwrap_or(i);
                    out.extend(&chars[i..=end]);
                    i = end + 1;
                } else {
                    out.push_str("\\{");
                    i += 1;
                }
            }
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(&out)
        .map_err(|e| {
            PatternError::Unsupported(format!(
                "cannot be translated for a linear-time matcher: {}",
                first_line(&e.to_string())
            ))
        })?;
    Ok(out)
}

/// One part of a [`shape`]: a set of ASCII bytes (bit `b` for byte `b`), taken at least `.1` and
/// at most `.2` times (`u32::MAX`: no bound); the runtime's `Run`.
pub type Run = (u128, u32, u32);

/// The runs of ASCII bytes a pattern spells when it is as simple as most are (`^[A-Z]{3}-\d+$`):
/// anchored at both ends, and nothing but literal characters, `\d`, `\w` and classes of ASCII
/// characters (not negated), each with an optional greedy quantifier. A matcher that takes each
/// run as far as it goes decides such a pattern exactly when no run that may stop early could
/// give a byte to the runs after it: its set shares no byte with any of them up to the first
/// that must take one. `None` for any other pattern, which the `regex` crate then matches.
pub fn shape(ecma: &str) -> Option<Vec<Run>> {
    let chars: Vec<char> = ecma.chars().collect();
    let inner = chars.strip_prefix(&['^'])?.strip_suffix(&['$'])?;
    // A `$` that closes the pattern must not be escaped: `\$` is a literal dollar.
    let trailing_backslashes = inner.iter().rev().take_while(|&&c| c == '\\').count();
    if trailing_backslashes % 2 == 1 {
        return None;
    }
    let mut runs = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        let (class, next) = atom(inner, i)?;
        let (min, max, next) = quantifier(inner, next)?;
        runs.push((class, min, max));
        i = next;
    }
    let greedy_is_exact = runs.iter().enumerate().all(|(k, &(class, min, max))| {
        if min == max {
            return true;
        }
        for &(after, after_min, _) in &runs[k + 1..] {
            if after & class != 0 {
                return false;
            }
            if after_min > 0 {
                break;
            }
        }
        true
    });
    // The runtime's table has a bit a run.
    (greedy_is_exact && runs.len() <= 32).then_some(runs)
}

const DIGITS: u128 = ((1u128 << 10) - 1) << b'0';
const WORD: u128 =
    DIGITS | (((1u128 << 26) - 1) << b'A') | (((1u128 << 26) - 1) << b'a') | (1u128 << b'_');

/// The set of one atom at `i`, and where it ends.
fn atom(chars: &[char], i: usize) -> Option<(u128, usize)> {
    match *chars.get(i)? {
        '\\' => Some((escape(*chars.get(i + 1)?)?, i + 2)),
        '[' => class(chars, i + 1),
        '^' | '$' | '.' | '|' | '?' | '*' | '+' | '(' | ')' | ']' | '{' | '}' => None,
        c => Some((bit(c)?, i + 1)),
    }
}

/// The set of `\e` outside a class or inside one: `\d`, `\w`, or an escaped syntax character.
fn escape(e: char) -> Option<u128> {
    match e {
        'd' => Some(DIGITS),
        'w' => Some(WORD),
        '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
        | '/' | '-' => bit(e),
        _ => None,
    }
}

/// The set of the class whose `[` is just before `i`, and where it ends.
fn class(chars: &[char], mut i: usize) -> Option<(u128, usize)> {
    if chars.get(i) == Some(&'^') || chars.get(i) == Some(&']') {
        return None;
    }
    let mut set = 0u128;
    loop {
        let (lo, single, next) = match *chars.get(i)? {
            ']' => return (set != 0).then_some((set, i + 1)),
            '\\' => {
                let e = *chars.get(i + 1)?;
                // `\d` and `\w` are sets, not range ends.
                let lo = if matches!(e, 'd' | 'w') {
                    None
                } else {
                    Some(e)
                };
                (lo, escape(e)?, i + 2)
            }
            '[' => return None,
            c => (Some(c), bit(c)?, i + 1),
        };
        i = next;
        match (lo, chars.get(i), chars.get(i + 1)) {
            (Some(lo), Some('-'), Some(&hi)) if hi != ']' => {
                let (hi, next) = if hi == '\\' {
                    let e = *chars.get(i + 2)?;
                    if matches!(e, 'd' | 'w') {
                        return None;
                    }
                    escape(e)?;
                    (e, i + 3)
                } else {
                    (hi, i + 2)
                };
                let (lo, hi) = (u32::from(lo), u32::from(hi));
                if lo > hi || hi > 0x7f {
                    return None;
                }
                for c in lo..=hi {
                    set |= 1u128 << c;
                }
                i = next;
            }
            _ => set |= single,
        }
    }
}

/// A greedy quantifier at `i` (or none: once), and where it ends.
fn quantifier(chars: &[char], i: usize) -> Option<(u32, u32, usize)> {
    let (min, max, next) = match chars.get(i) {
        Some('?') => (0, 1, i + 1),
        Some('*') => (0, u32::MAX, i + 1),
        Some('+') => (1, u32::MAX, i + 1),
        Some('{') => {
            let close = i + chars[i..].iter().position(|&c| c == '}')?;
            let body: String = chars[i + 1..close].iter().collect();
            let number = |t: &str| -> Option<u32> {
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse().ok())
                    .flatten()
            };
            let (min, max) = match body.split_once(',') {
                None => {
                    let n = number(&body)?;
                    (n, n)
                }
                Some((lo, "")) => (number(lo)?, u32::MAX),
                Some((lo, hi)) => (number(lo)?, number(hi)?),
            };
            if min > max || max == u32::MAX && !body.ends_with(',') {
                return None;
            }
            (min, max, close + 1)
        }
        _ => return Some((1, 1, i)),
    };
    // A lazy quantifier (`+?`) or a second one is left to the regex crate.
    if matches!(chars.get(next), Some('?' | '*' | '+' | '{')) {
        return None;
    }
    Some((min, max, next))
}

/// The bit of an ASCII character.
fn bit(c: char) -> Option<u128> {
    c.is_ascii().then(|| 1u128 << u32::from(c))
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| s.lines().next().unwrap_or(s))
}

fn hex_at(chars: &[char], at: usize, n: usize) -> Option<u32> {
    let digits: String = chars.get(at..at + n)?.iter().collect();
    if digits.chars().all(|c| c.is_ascii_hexdigit()) {
        u32::from_str_radix(&digits, 16).ok()
    } else {
        None
    }
}

fn push_code(out: &mut String, v: u32) {
    if (0xD800..0xE000).contains(&v) {
        // A lone surrogate can never occur in a Rust string: match nothing.
        out.push_str("[a&&b]");
    } else {
        out.push_str(&format!("\\x{{{v:X}}}"));
    }
}

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_punctuation() || c == ' ' {
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The translated pattern, run by the `regex` crate, agrees with `regress` (a real
    /// ECMA-262 engine) on every input.
    fn agree(ecma: &str, inputs: &[&str]) {
        let translated = translate(ecma).unwrap();
        let ours = regex::Regex::new(&translated).unwrap();
        let reference = regress::Regex::new(ecma).unwrap();
        for s in inputs {
            assert_eq!(
                ours.is_match(s),
                reference.find(s).is_some(),
                "pattern {ecma:?} (as {translated:?}) on {s:?}"
            );
        }
    }

    /// Every string of up to `len` characters of `alphabet`.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..len {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(last.iter().cloned());
        }
        all
    }

    #[test]
    fn simple_patterns_are_runs_that_match_as_ecma_does() {
        use gwgen_runtime::__private_0_1::v::{Run as Part, Runs};
        for (ecma, alphabet) in [
            (r"^[A-Z]{3}-[0-9]{4}$", &['A', 'Z', '0', '9', '-', 'a'][..]),
            (r"^\d+$", &['0', '7', 'a', '\n']),
            (r"^[a-z0-9_-]{1,4}$", &['a', '0', '_', '-', 'A', '.']),
            (r"^[a-z]+\.[a-z]{2,3}$", &['a', 'z', '.', '0']),
            (r"^\w*@?[.]*$", &['a', '_', '@', '0', '.', '-']),
            (r"^v\d{1,2}(?:)$", &['v', '1']),
            (r"^[\-\]\\a-c]+x?$", &['-', ']', '\\', 'b', 'x', 'd']),
            (r"^$", &['a', '\n']),
            (r"^[-a]{0,2}b$", &['-', 'a', 'b']),
            (r"^a{2,}b*$", &['a', 'b']),
            (r"^\$\.\^$", &['$', '.', '^']),
            (r"^[a-c][a-c]?x$", &['a', 'c', 'x']),
        ] {
            let Some(runs) = shape(ecma) else {
                // Refused shapes are matched by the regex crate, as before.
                assert!(ecma.contains("(?:)"), "{ecma} should be runs");
                continue;
            };
            let parts: Vec<Part> = runs
                .iter()
                .map(|&(class, min, max)| Part { class, min, max })
                .collect();
            let runs = Runs::new(parts.leak());
            let reference = regress::Regex::new(ecma).unwrap();
            for s in strings(alphabet, 6) {
                assert_eq!(
                    runs.matches(&s),
                    reference.find(&s).is_some(),
                    "{ecma} on {s:?}"
                );
            }
        }
    }

    #[test]
    fn patterns_a_greedy_walk_could_misread_are_left_to_the_regex_crate() {
        for ecma in [
            r"^[a-z]+[a-z0-9]{2}$",
            r"^a*a$",
            r"^[a-z]+[0-9]*[a-z]$",
            r"^a?a$",
            r"^\w+-?\d$",
            r"[A-Z]{3}",
            r"^abc",
            r"abc$",
            r"^a|b$",
            r"^(ab)+$",
            r"^.+$",
            r"^[^a]$",
            r"^\s$",
            r"^é$",
            r"^a+?$",
            r"^a\$",
            r"^\bab$",
            r"^\w*@?[0-9]*$",
        ] {
            assert_eq!(shape(ecma), None, "{ecma}");
        }
        assert_eq!(
            shape(r"^a{2}b?$"),
            Some(vec![(1 << b'a', 2, 2), (1 << b'b', 0, 1)])
        );
    }

    #[test]
    fn ascii_classes() {
        assert_eq!(translate(r"^\d+$").unwrap(), "^[0-9]+$");
        assert_eq!(translate(r"[\w.-]").unwrap(), r"[0-9A-Za-z_.-]");
        let inputs = [
            "5", "\u{663}", "a_1", "\u{e9}", " ", "\u{a0}", "\u{2003}", "x\ny", "\r", "", "abc",
            "ABC-123", "a.b",
        ];
        for p in [
            r"^\d$",
            r"^\w+$",
            r"^\s$",
            r"^\S+$",
            r"\bab",
            r"^[\d\s]+$",
            r"^[^\w]$",
            r"^.$",
            r"^[A-Z]{3}-[0-9]{3}$",
            r"a\.b",
            r"^[\D]$",
            r"^(?:a|b)*c?$",
        ] {
            agree(p, &inputs);
        }
    }

    #[test]
    fn dot_and_anchors_follow_ecma() {
        agree(
            r"^a.c$",
            &["abc", "a\nc", "a\rc", "a\u{2028}c", "a\u{1F600}c"],
        );
        agree(r"^ab$", &["ab", "ab\n", "\nab"]);
        agree(r"[^]", &["\n", "x", ""]);
    }

    #[test]
    fn refuses_backtracking_features() {
        assert!(matches!(
            translate(r"(a)\1"),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            translate(r"^(?!foo)"),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            translate(r"(?<=a)b"),
            Err(PatternError::Unsupported(_))
        ));
        assert!(matches!(
            translate(r"(?<n>a)\k<n>"),
            Err(PatternError::Unsupported(_))
        ));
    }

    #[test]
    fn refuses_invalid() {
        assert!(matches!(
            translate(r"(unclosed"),
            Err(PatternError::Invalid(_))
        ));
        assert!(matches!(translate(r"[z-a]"), Err(PatternError::Invalid(_))));
    }

    #[test]
    fn literal_braces_and_named_groups() {
        assert_eq!(translate("a{").unwrap(), "a\\{");
        assert_eq!(translate("a{2,3}").unwrap(), "a{2,3}");
        assert_eq!(
            translate("(?<year>[0-9]{4})").unwrap(),
            "(?P<year>[0-9]{4})"
        );
        assert_eq!(translate("\\u00e9").unwrap(), "\\x{E9}");
    }
}
