//! Glob-style pattern matching with Redis's rules (KEYS, SCAN MATCH, CONFIG GET, PSUBSCRIBE).
//!
//! `*` any sequence, `?` any one byte, `[abc]` `[^abc]` `[a-z]` classes (a reversed range
//! `[z-a]` works too), `\x` the byte `x` literally. Unlike Redis's recursive matcher this one
//! backtracks only to the most recent `*`, which is enough for glob patterns and keeps the cost
//! at O(pattern × subject) whatever the pattern.

/// Does `subject` match `pattern`? `nocase` folds ASCII case.
pub fn glob_match(pattern: &[u8], subject: &[u8], nocase: bool) -> bool {
    // Redis's matcher never enters its loop for an empty subject: only the empty pattern
    // matches it (KEYS * and SCAN without MATCH skip matching altogether).
    if subject.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut s) = (0, 0);
    // Where to resume after the most recent '*': (pattern index after it, subject index).
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            // Collapse runs of '*'.
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, s));
            continue;
        }
        if let Some(next) = match_one(pattern, p, subject[s], nocase) {
            p = next;
            s += 1;
            continue;
        }
        match star {
            // Let the last '*' swallow one more byte and try again from there.
            Some((sp, ss)) => {
                p = sp;
                s = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches the pattern element at `p` against byte `c`; on success returns the index of the
/// next pattern element. Never called at a `*`.
fn match_one(pattern: &[u8], p: usize, c: u8, nocase: bool) -> Option<usize> {
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    match *pattern.get(p)? {
        b'?' => Some(p + 1),
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            loop {
                match pattern.get(i) {
                    // An unterminated class ends with the pattern, as in Redis.
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < pattern.len() => {
                        matched |= eq(pattern[i + 1], c);
                        i += 2;
                    }
                    Some(&lo) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                        let hi = pattern[i + 2];
                        let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
                        let (lo, hi, c) = if nocase {
                            (lo.to_ascii_lowercase(), hi.to_ascii_lowercase(), c.to_ascii_lowercase())
                        } else {
                            (lo, hi, c)
                        };
                        matched |= (lo..=hi).contains(&c);
                        i += 3;
                    }
                    Some(&lit) => {
                        matched |= eq(lit, c);
                        i += 1;
                    }
                }
            }
            (matched != negate).then_some(i)
        }
        b'\\' if p + 1 < pattern.len() => eq(pattern[p + 1], c).then_some(p + 2),
        lit => eq(lit, c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }

    #[test]
    fn stars_and_questions() {
        assert!(!m("*", ""), "as Redis: an empty subject matches only the empty pattern");
        assert!(!m("**", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("a**b", "ab"));
        assert!(!m("abc", "abcd"));
        assert!(!m("", "a"));
        assert!(m("", ""));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("ab\\", "ab\\"));
        assert!(m("[abc", "a"));
        assert!(glob_match(b"HELLO*", b"hello world", true));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let subject = "a".repeat(10_000);
        let pattern = "*a".repeat(100) + "b";
        assert!(!m(&pattern, &subject));
    }
}
