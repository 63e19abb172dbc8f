//! Redis's glob patterns (`stringmatchlen` in util.c): `*`, `?`, `[abc]`, `[^a-z]`, and `\`
//! escapes, on bytes, with Redis 7's answers, but in bounded work.
//!
//! Redis matches recursively (a `*` tries the rest of the pattern at every start), which is
//! exponential in the number of stars without its nesting limit (CVE-2022-36021). Here a
//! pattern is normalised once per request ([`Pattern::new`]: runs of stars become one, the
//! trailing stars and the number of stars are noted) and a text is matched by the classic
//! greedy matcher that backtracks only to the last star: O(text * pattern) at worst, one pass
//! in practice. Every non-star element matches exactly one byte, so a later star can absorb
//! whatever an earlier one would have, and the last star is the only one worth retrying.
//!
//! Redis's answers that this keeps (checked against redis-server 7.0.15): an empty text
//! matches only the empty pattern (`**` does not match `""`; KEYS, SCAN, SSCAN and HSCAN
//! special-case the pattern `*` alone, which matches everything, and so does [`Pattern`]); a
//! pattern with more than 1000 stars that are not at its end matches nothing (Redis's nesting
//! limit stops every match that has to pass them); an unterminated class ends at the
//! pattern's end; `[^` at the end matches any byte; in `[a-]x` the `]` ends the range `a-]`,
//! not the class; a `\` last in the pattern (or in a class) is a literal backslash.

/// Redis's limit on nested stars (`stringmatchlen_impl`'s `nesting > 1000`).
const MAX_NESTED_STARS: usize = 1000;

/// One element of a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    Star,
    Any,
    Byte(u8),
    /// A class: its body `pattern[start..end]` (after `[` and `^`), negated or not.
    Class {
        start: usize,
        end: usize,
        not: bool,
    },
}

/// The element at `p` (which must be `< pattern.len()`) and where the next one starts.
fn element(pattern: &[u8], p: usize) -> (Elem, usize) {
    match pattern[p] {
        b'*' => (Elem::Star, p + 1),
        b'?' => (Elem::Any, p + 1),
        b'\\' if p + 1 < pattern.len() => (Elem::Byte(pattern[p + 1]), p + 2),
        b'[' => {
            let mut q = p + 1;
            let not = pattern.get(q) == Some(&b'^');
            if not {
                q += 1;
            }
            let start = q;
            // The class's extent does not depend on the text: walk it as Redis does.
            loop {
                match pattern.get(q) {
                    None => return (Elem::Class { start, end: q, not }, q),
                    Some(b'\\') if q + 1 < pattern.len() => q += 2,
                    Some(b']') => return (Elem::Class { start, end: q, not }, q + 1),
                    Some(_) if pattern.get(q + 1) == Some(&b'-') && q + 2 < pattern.len() => q += 3,
                    Some(_) => q += 1,
                }
            }
        }
        c => (Elem::Byte(c), p + 1),
    }
}

/// Whether the class body `body` (as [`element`] delimited it) holds `c`.
fn class_holds(body: &[u8], c: u8) -> bool {
    let mut q = 0;
    while q < body.len() {
        match body[q] {
            b'\\' if q + 1 < body.len() => {
                if body[q + 1] == c {
                    return true;
                }
                q += 2;
            }
            lo if body.get(q + 1) == Some(&b'-') && q + 2 < body.len() => {
                let hi = body[q + 2];
                let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
                if (lo..=hi).contains(&c) {
                    return true;
                }
                q += 3;
            }
            b => {
                if b == c {
                    return true;
                }
                q += 1;
            }
        }
    }
    false
}

/// A pattern prepared for matching many texts (KEYS, SCAN MATCH, SSCAN/HSCAN MATCH, pub/sub).
#[derive(Clone, Debug)]
pub struct Pattern {
    /// The pattern with every run of stars made one star.
    pattern: Vec<u8>,
    /// Where the pattern's trailing star is (`pattern.len()` when it has none): a text that
    /// ends with the pattern there matches.
    trailing: usize,
    /// The pattern is `*` alone: everything matches (Redis's callers' special case).
    all: bool,
    /// Redis's nesting limit makes every match fail.
    never: bool,
}

impl Pattern {
    /// Prepares `pattern` (one pass over it).
    pub fn new(pattern: &[u8]) -> Pattern {
        let mut normal = Vec::with_capacity(pattern.len());
        let (mut p, mut stars, mut trailing) = (0, 0, None);
        while p < pattern.len() {
            let (elem, next) = element(pattern, p);
            if elem == Elem::Star {
                if trailing.is_none() {
                    trailing = Some(normal.len());
                    stars += 1;
                    normal.push(b'*');
                }
            } else {
                trailing = None;
                normal.extend_from_slice(&pattern[p..next]);
            }
            p = next;
        }
        // The trailing star is no nesting level: Redis matches it without recursing.
        let nested = stars - usize::from(trailing.is_some());
        Pattern {
            all: pattern == b"*",
            never: nested > MAX_NESTED_STARS,
            trailing: trailing.unwrap_or(normal.len()),
            pattern: normal,
        }
    }

    /// Whether the pattern is `*` alone (it matches everything).
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether `text` matches as `stringmatchlen` alone answers, without the callers' special
    /// case of `*`: pub/sub's patterns (PSUBSCRIBE, PUBSUB CHANNELS), where `*` does not match
    /// the empty channel.
    pub fn matches_exactly(&self, text: &[u8]) -> bool {
        if text.is_empty() {
            return self.pattern.is_empty();
        }
        self.matches(text)
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &[u8]) -> bool {
        if self.all {
            return true;
        }
        if text.is_empty() {
            return self.pattern.is_empty();
        }
        if self.never {
            return false;
        }
        let pat = &self.pattern[..];
        let (mut p, mut t) = (0, 0);
        // The last star seen: where the pattern goes on after it, and the first text byte
        // it has not absorbed yet.
        let mut star: Option<(usize, usize)> = None;
        loop {
            if t == text.len() {
                return p >= self.trailing;
            }
            if p < pat.len() {
                let (elem, next) = element(pat, p);
                let step = match elem {
                    Elem::Star => {
                        if next == pat.len() {
                            return true;
                        }
                        star = Some((next, t));
                        p = next;
                        continue;
                    }
                    Elem::Any => true,
                    Elem::Byte(b) => b == text[t],
                    Elem::Class { start, end, not } => class_holds(&pat[start..end], text[t]) != not,
                };
                if step {
                    p = next;
                    t += 1;
                    continue;
                }
            }
            // A mismatch (or pattern left over): the last star absorbs one more byte.
            let Some((after, absorbed)) = star else { return false };
            star = Some((after, absorbed + 1));
            p = after;
            t = absorbed + 1;
        }
    }
}

/// Whether `text` matches `pattern` (see [`Pattern`] to match many texts).
#[cfg(test)]
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;

    /// The matcher this module had before (exponential in the stars), as a reference: it is
    /// Redis's recursion without the nesting limit, except that its `*` also matched `""`.
    fn recursive(pattern: &[u8], text: &[u8]) -> bool {
        let (mut p, mut t) = (0, 0);
        while p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                        p += 1;
                    }
                    if p + 1 == pattern.len() {
                        return true;
                    }
                    return (t..=text.len()).any(|start| recursive(&pattern[p + 1..], &text[start..]));
                }
                b'?' => {
                    if t >= text.len() {
                        return false;
                    }
                    t += 1;
                }
                b'[' => {
                    if t >= text.len() {
                        return false;
                    }
                    p += 1;
                    let not = pattern.get(p) == Some(&b'^');
                    if not {
                        p += 1;
                    }
                    let mut matched = false;
                    loop {
                        match pattern.get(p) {
                            None => {
                                p -= 1;
                                break;
                            }
                            Some(b'\\') if p + 1 < pattern.len() => {
                                p += 1;
                                matched |= pattern[p] == text[t];
                            }
                            Some(b']') => break,
                            Some(&lo) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                                let hi = pattern[p + 2];
                                let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
                                p += 2;
                                matched |= (lo..=hi).contains(&text[t]);
                            }
                            Some(&c) => matched |= c == text[t],
                        }
                        p += 1;
                    }
                    if matched == not {
                        return false;
                    }
                    t += 1;
                }
                b'\\' if p + 1 < pattern.len() => {
                    p += 1;
                    if t >= text.len() || pattern[p] != text[t] {
                        return false;
                    }
                    t += 1;
                }
                c => {
                    if t >= text.len() || c != text[t] {
                        return false;
                    }
                    t += 1;
                }
            }
            p += 1;
        }
        t == text.len()
    }

    #[test]
    fn redis_glob_cases() {
        let yes = [
            ("*", ""),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("user:*", "user:42"),
            ("a\\*b", "a*b"),
            ("*x*", "abxcd"),
        ];
        for (p, t) in yes {
            assert!(matches(p.as_bytes(), t.as_bytes()), "{p} ~ {t}");
        }
        let no = [
            ("h?llo", "hllo"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("a\\*b", "axb"),
            ("user:*", "use"),
            ("", "a"),
        ];
        for (p, t) in no {
            assert!(!matches(p.as_bytes(), t.as_bytes()), "{p} !~ {t}");
        }
    }

    /// Answers redis-server 7.0.15 gave (KEYS over keys "", "a", "ab"; SSCAN over "", "x").
    #[test]
    fn redis_edge_cases() {
        assert!(matches(b"", b""));
        assert!(!matches(b"**", b""), "only `*` alone matches the empty key");
        assert!(!matches(b"?*", b""));
        assert!(matches(b"**", b"a") && matches(b"a**", b"ab") && matches(b"a**", b"a"));
        // `[a-]x` is one unterminated class: the range ] to a, and x.
        assert!(matches(b"[a-]x", b"]") && matches(b"[a-]x", b"_") && matches(b"[a-]x", b"x"));
        assert!(!matches(b"[a-]x", b"]x") && !matches(b"[a-]x", b"-") && !matches(b"[a-]x", b"b"));
        assert!(matches(b"a[^", b"az"), "[^ at the end matches any byte");
        assert!(!matches(b"a[", b"a[") && !matches(b"a[", b"ab"));
        assert!(matches(b"a[bc", b"ac"), "an unterminated class ends at the end");
        assert!(matches(b"a\\", b"a\\"), "a final backslash is a literal");
        assert!(matches(b"[\\]]", b"]") && matches(b"[\\", b"\\"));
        assert!(matches(b"*[*]", b"x*") && !matches(b"*[*]", b"xy"));
        assert!(matches(b"\\**", b"*abc") && !matches(b"\\**", b"abc"));
    }

    /// Redis's nesting limit: 1000 stars before a last element still match, 1001 never.
    #[test]
    fn nesting_limit_as_redis() {
        let text = vec![b'a'; 1001];
        let mut prefixed = b"x".to_vec();
        prefixed.extend_from_slice(&text);
        assert!(matches(&b"*a".repeat(1000), &text));
        assert!(!matches(&b"*a".repeat(1001), &text));
        assert!(!matches(&[b"*a".repeat(1001), b"*".to_vec()].concat(), &text));
        assert!(matches(&[b"*a".repeat(1000), b"*".to_vec()].concat(), &text));
        assert!(matches(&[b"x".to_vec(), b"*a".repeat(1000), b"*".to_vec()].concat(), &prefixed));
        assert!(!matches(&[b"x".to_vec(), b"*a".repeat(1001), b"*".to_vec()].concat(), &prefixed));
        // Runs of stars count once, as Redis collapses them.
        assert!(matches(&b"**a".repeat(1000), &text));
    }

    /// The pattern of issue 20 answers at once (the recursive matcher ran for minutes).
    #[test]
    fn hostile_pattern_is_fast() {
        let started = std::time::Instant::now();
        let key = vec![b'a'; 40];
        assert!(!matches(b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &key));
        let long = vec![b'a'; 100_000];
        assert!(!matches(&b"*a".repeat(500).into_iter().chain(*b"*b").collect::<Vec<_>>(), &long));
        assert!(matches(&b"*a".repeat(500), &long));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    fn pattern_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"ab*?[]^-\\".to_vec()), 0..10)
    }

    fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"ab-]^*\\".to_vec()), 0..8)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The same answers as the recursive matcher on every non-empty text (on the empty
        /// text the old one let `**` match; Redis does not, `redis_edge_cases`).
        #[test]
        fn agrees_with_the_recursive_matcher(pattern in pattern_bytes(), text in text_bytes()) {
            let expected = if text.is_empty() { pattern.is_empty() || pattern == b"*" } else { recursive(&pattern, &text) };
            prop_assert_eq!(matches(&pattern, &text), expected, "{:?} ~ {:?}", String::from_utf8_lossy(&pattern), String::from_utf8_lossy(&text));
        }
    }
}
