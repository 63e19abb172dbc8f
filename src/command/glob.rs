//! Redis's glob patterns (`stringmatchlen` in util.c): `*`, `?`, `[abc]`, `[^a-z]`, and `\`
//! escapes, on bytes.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
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
                return (t..=text.len()).any(|start| matches(&pattern[p + 1..], &text[start..]));
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
                        // An unterminated class ends at the pattern's end (Redis does the same).
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

#[cfg(test)]
mod tests {
    use super::matches;

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
}
