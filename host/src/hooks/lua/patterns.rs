//! Lua 5.4 patterns (reference manual §6.4.1), matched under a step budget.
//!
//! Lua's own matcher backtracks without limit inside one C call, where the instruction hook
//! never fires: `string.find(("a"):rep(3000), ("a*"):rep(12) .. "b")` runs for hours. This one
//! follows the same rules (the same backtracking order, hence the same captures; the same
//! errors), but every step (an attempt at a pattern position, a character tried by a
//! repetition or a balance, a byte compared by a back-reference) is counted and reported to
//! `charge` every [`STEP_BATCH`] steps, which stops the match once the call's budget or deadline
//! is spent. Pure: no Lua in here, only bytes in and positions out.

/// Most captures in one pattern (Lua's `LUA_MAXCAPTURES`).
pub(super) const MAX_CAPTURES: usize = 32;
/// How deep matching may nest (Lua's `MAXCCALLS`): deeper is "pattern too complex".
const MAX_DEPTH: u32 = 200;
/// Steps counted locally between two calls of the charge function.
pub(super) const STEP_BATCH: u64 = 1024;
/// The characters that make a pattern more than a plain string (`find` searches plainly
/// without them).
const SPECIALS: &[u8] = b"^$*+?.([%-";

/// Why matching stopped without an answer.
#[derive(Debug)]
pub(super) enum Fail<E> {
    /// A malformed pattern or capture use: Lua's own message, raised as a script error.
    Pattern(String),
    /// The charge function refused more steps.
    Limit(E),
}

impl<E> Fail<E> {
    fn pattern(msg: impl Into<String>) -> Self {
        Self::Pattern(msg.into())
    }
}

/// One capture as the matcher holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Capture {
    /// Opened, not closed yet.
    Open(usize),
    /// The bytes `start..end` of the subject.
    Span(usize, usize),
    /// A position capture `()`: the 0-based offset it matched at.
    Position(usize),
}

/// A capture's value, as a script gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    /// The subject's bytes `start..end`.
    Bytes(usize, usize),
    /// A 1-based position.
    Position(usize),
}

/// Whether `find` may search for `pattern` as plain bytes.
pub(super) fn is_plain(pattern: &[u8]) -> bool {
    !pattern.iter().any(|b| SPECIALS.contains(b))
}

/// Matches one pattern against one subject; `charge(n)` is told of every `n` steps and stops
/// the match by returning `Err`.
pub(super) struct Matcher<'a, E, F: FnMut(u64) -> Result<(), E>> {
    src: &'a [u8],
    pat: &'a [u8],
    captures: [Capture; MAX_CAPTURES],
    level: usize,
    depth: u32,
    steps: u64,
    charge: F,
}

type Res<T, E> = Result<T, Fail<E>>;

impl<'a, E, F: FnMut(u64) -> Result<(), E>> Matcher<'a, E, F> {
    /// A matcher of `pattern` (without any leading `^`, which callers handle) in `subject`.
    pub(super) fn new(subject: &'a [u8], pattern: &'a [u8], charge: F) -> Self {
        Self {
            src: subject,
            pat: pattern,
            captures: [Capture::Position(0); MAX_CAPTURES],
            level: 0,
            depth: MAX_DEPTH,
            steps: 0,
            charge,
        }
    }

    /// Tries the whole pattern at subject offset `at`: the end of the match, if any. Captures
    /// are those of this attempt.
    pub(super) fn match_at(&mut self, at: usize) -> Res<Option<usize>, E> {
        self.level = 0;
        self.depth = MAX_DEPTH;
        self.do_match(at, 0)
    }

    /// Reports the steps not yet charged (call once the matching is over).
    pub(super) fn flush(&mut self) -> Res<(), E> {
        let steps = std::mem::take(&mut self.steps);
        (self.charge)(steps).map_err(Fail::Limit)
    }

    /// Counts `n` steps of work.
    pub(super) fn tick(&mut self, n: u64) -> Res<(), E> {
        self.steps += n;
        if self.steps >= STEP_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// How many values a match yields: its captures, or the whole match when it has none.
    pub(super) fn value_count(&self, whole: bool) -> usize {
        if self.level == 0 && whole {
            1
        } else {
            self.level
        }
    }

    /// The `i`-th (0-based) value of the match `start..end`: a capture, or the whole match
    /// when there are none and `i` is 0.
    pub(super) fn value(&self, i: usize, start: usize, end: usize) -> Res<Value, E> {
        if i >= self.level {
            if i != 0 {
                return Err(Fail::pattern(format!("invalid capture index %{}", i + 1)));
            }
            return Ok(Value::Bytes(start, end));
        }
        match self.captures[i] {
            Capture::Open(_) => Err(Fail::pattern("unfinished capture")),
            Capture::Span(s, e) => Ok(Value::Bytes(s, e)),
            Capture::Position(at) => Ok(Value::Position(at + 1)),
        }
    }

    fn pat_at(&self, p: usize) -> Option<u8> {
        self.pat.get(p).copied()
    }

    fn do_match(&mut self, s: usize, p: usize) -> Res<Option<usize>, E> {
        if self.depth == 0 {
            return Err(Fail::pattern("pattern too complex"));
        }
        self.depth -= 1;
        let result = self.match_here(s, p);
        self.depth += 1;
        result
    }

    /// The body of one match attempt; items that cannot need backtracking loop here instead of
    /// recursing.
    fn match_here(&mut self, mut s: usize, mut p: usize) -> Res<Option<usize>, E> {
        loop {
            self.tick(1)?;
            let Some(c) = self.pat_at(p) else {
                return Ok(Some(s));
            };
            match c {
                b'(' => {
                    return if self.pat_at(p + 1) == Some(b')') {
                        self.start_capture(s, p + 2, Capture::Position(s))
                    } else {
                        self.start_capture(s, p + 1, Capture::Open(s))
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                b'%' => match self.pat_at(p + 1) {
                    Some(b'b') => match self.balance(s, p + 2)? {
                        Some(end) => {
                            s = end;
                            p += 4;
                            continue;
                        }
                        None => return Ok(None),
                    },
                    Some(b'f') => {
                        p += 2;
                        if self.pat_at(p) != Some(b'[') {
                            return Err(Fail::pattern("missing '[' after '%f' in pattern"));
                        }
                        let ep = self.class_end(p)?;
                        let before = if s == 0 { 0 } else { self.src[s - 1] };
                        let here = self.src.get(s).copied().unwrap_or(0);
                        if !self.in_set(before, p, ep - 1) && self.in_set(here, p, ep - 1) {
                            p = ep;
                            continue;
                        }
                        return Ok(None);
                    }
                    Some(d @ b'0'..=b'9') => match self.back_reference(s, d)? {
                        Some(end) => {
                            s = end;
                            p += 2;
                            continue;
                        }
                        None => return Ok(None),
                    },
                    _ => {}
                },
                _ => {}
            }
            // A single-character class, maybe followed by a repetition.
            let ep = self.class_end(p)?;
            let suffix = self.pat_at(ep);
            if !self.single(s, p, ep) {
                if matches!(suffix, Some(b'*' | b'?' | b'-')) {
                    p = ep + 1;
                    continue;
                }
                return Ok(None);
            }
            match suffix {
                Some(b'?') => {
                    if let Some(end) = self.do_match(s + 1, ep + 1)? {
                        return Ok(Some(end));
                    }
                    p = ep + 1;
                }
                Some(b'+') => return self.longest(s + 1, p, ep),
                Some(b'*') => return self.longest(s, p, ep),
                Some(b'-') => return self.shortest(s, p, ep),
                _ => {
                    s += 1;
                    p = ep;
                }
            }
        }
    }

    /// `x*` from `s`: as many as match, then fewer until the rest matches.
    fn longest(&mut self, s: usize, p: usize, ep: usize) -> Res<Option<usize>, E> {
        let mut n = 0;
        while self.single(s + n, p, ep) {
            n += 1;
            self.tick(1)?;
        }
        loop {
            if let Some(end) = self.do_match(s + n, ep + 1)? {
                return Ok(Some(end));
            }
            if n == 0 {
                return Ok(None);
            }
            n -= 1;
        }
    }

    /// `x-` from `s`: as few as let the rest match.
    fn shortest(&mut self, mut s: usize, p: usize, ep: usize) -> Res<Option<usize>, E> {
        loop {
            if let Some(end) = self.do_match(s, ep + 1)? {
                return Ok(Some(end));
            }
            if !self.single(s, p, ep) {
                return Ok(None);
            }
            s += 1;
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, capture: Capture) -> Res<Option<usize>, E> {
        if self.level >= MAX_CAPTURES {
            return Err(Fail::pattern("too many captures"));
        }
        self.captures[self.level] = capture;
        self.level += 1;
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.level -= 1;
        }
        Ok(result)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Res<Option<usize>, E> {
        let Some(i) = (0..self.level)
            .rev()
            .find(|&i| matches!(self.captures[i], Capture::Open(_)))
        else {
            return Err(Fail::pattern("invalid pattern capture"));
        };
        let Capture::Open(start) = self.captures[i] else {
            return Err(Fail::pattern("invalid pattern capture"));
        };
        self.captures[i] = Capture::Span(start, s);
        let result = self.do_match(s, p)?;
        if result.is_none() {
            self.captures[i] = Capture::Open(start);
        }
        Ok(result)
    }

    /// `%bxy` at `s`, `p` pointing at `x`: the end of the balanced run, if one starts here.
    fn balance(&mut self, s: usize, p: usize) -> Res<Option<usize>, E> {
        let (Some(open), Some(close)) = (self.pat_at(p), self.pat_at(p + 1)) else {
            return Err(Fail::pattern(
                "malformed pattern (missing arguments to '%b')",
            ));
        };
        if self.src.get(s) != Some(&open) {
            return Ok(None);
        }
        let mut depth = 1u64;
        let mut i = s + 1;
        while let Some(&c) = self.src.get(i) {
            self.tick(1)?;
            if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if c == open {
                depth += 1;
            }
            i += 1;
        }
        Ok(None)
    }

    /// `%1`..`%9` at `s`: the end of a repeat of that capture's bytes, if they follow.
    fn back_reference(&mut self, s: usize, digit: u8) -> Res<Option<usize>, E> {
        let index = usize::from(digit).wrapping_sub(usize::from(b'1'));
        let capture = (index < self.level).then(|| self.captures[index]);
        let (start, end) = match capture {
            Some(Capture::Span(start, end)) => (start, end),
            // A position has no bytes to repeat (Lua compares a length that cannot fit).
            Some(Capture::Position(_)) => return Ok(None),
            Some(Capture::Open(_)) | None => {
                return Err(Fail::pattern(format!(
                    "invalid capture index %{}",
                    i64::from(digit) - i64::from(b'0')
                )));
            }
        };
        let len = end - start;
        self.tick(len as u64 / 16)?;
        let repeated = self
            .src
            .get(s..s + len)
            .is_some_and(|here| here == &self.src[start..end]);
        Ok(repeated.then_some(s + len))
    }

    /// Where the single-character class starting at `p` ends.
    fn class_end(&self, p: usize) -> Res<usize, E> {
        let c = self.pat[p];
        let mut q = p + 1;
        match c {
            b'%' => {
                if q >= self.pat.len() {
                    return Err(Fail::pattern("malformed pattern (ends with '%')"));
                }
                Ok(q + 1)
            }
            b'[' => {
                if self.pat_at(q) == Some(b'^') {
                    q += 1;
                }
                // The first character of a set is taken as is, so `[]]` holds `]`.
                loop {
                    if q >= self.pat.len() {
                        return Err(Fail::pattern("malformed pattern (missing ']')"));
                    }
                    let c = self.pat[q];
                    q += 1;
                    if c == b'%' && q < self.pat.len() {
                        q += 1;
                    }
                    if self.pat_at(q) == Some(b']') {
                        return Ok(q + 1);
                    }
                }
            }
            _ => Ok(q),
        }
    }

    /// Whether the subject's byte at `s` (none past the end) is in the class `p..ep`.
    fn single(&self, s: usize, p: usize, ep: usize) -> bool {
        let Some(&c) = self.src.get(s) else {
            return false;
        };
        match self.pat[p] {
            b'.' => true,
            b'%' => class_matches(c, self.pat[p + 1]),
            b'[' => self.in_set(c, p, ep - 1),
            literal => literal == c,
        }
    }

    /// Whether `c` is in the set `[...]` from `p` (at `[`) to `end` (at `]`).
    fn in_set(&self, c: u8, p: usize, end: usize) -> bool {
        let mut i = p + 1;
        let mut inside = true;
        if self.pat[i] == b'^' {
            inside = false;
            i += 1;
        }
        while i < end {
            let here = self.pat[i];
            if here == b'%' {
                i += 1;
                if class_matches(c, self.pat[i]) {
                    return inside;
                }
                i += 1;
            } else if self.pat_at(i + 1) == Some(b'-') && i + 2 < end {
                if here <= c && c <= self.pat[i + 2] {
                    return inside;
                }
                i += 3;
            } else {
                if here == c {
                    return inside;
                }
                i += 1;
            }
        }
        !inside
    }
}

/// `%x` classes in the C locale: a letter names a class (upper case: its complement), anything
/// else stands for itself. `%z` (the NUL byte) is deprecated but still there.
fn class_matches(c: u8, class: u8) -> bool {
    let is = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        b's' => c == b' ' || (b'\t'..=b'\r').contains(&c),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        // Deprecated since Lua 5.2, still there: the NUL byte.
        b'z' => c == 0,
        _ => return class == c,
    };
    if class.is_ascii_uppercase() { !is } else { is }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(subject: &str, pattern: &str) -> Option<(usize, usize)> {
        let mut m = Matcher::new(subject.as_bytes(), pattern.as_bytes(), |_| Ok::<(), ()>(()));
        (0..=subject.len()).find_map(|at| match m.match_at(at) {
            Ok(Some(end)) => Some((at, end)),
            Ok(None) => None,
            Err(e) => panic!("{pattern}: {e:?}"),
        })
    }

    #[test]
    fn classes_follow_the_c_locale() {
        for c in 0..=255u8 {
            assert_eq!(class_matches(c, b's'), b" \t\n\x0b\x0c\r".contains(&c));
            assert_eq!(
                class_matches(c, b'p'),
                c.is_ascii_graphic() && !c.is_ascii_alphanumeric()
            );
            assert_eq!(class_matches(c, b'C'), !(c < 32 || c == 127));
        }
        assert!(class_matches(b'.', b'.') && !class_matches(b'z', b'.'));
    }

    #[test]
    fn basic_matches() {
        assert_eq!(find("hello world", "o w"), Some((4, 7)));
        assert_eq!(find("hello", "l+"), Some((2, 4)));
        assert_eq!(find("[[x]]", "%b[]"), Some((0, 5)));
        assert_eq!(find("THE (quick) fox", "%f[%a]%a+"), Some((0, 3)));
        assert_eq!(find("abcabc", "(abc)%1"), Some((0, 6)));
        assert_eq!(find("x", "[]]"), None);
        assert_eq!(find("]", "[]]"), Some((0, 1)));
    }

    #[test]
    fn a_runaway_pattern_is_stopped_by_its_charge() {
        let subject = "a".repeat(3000);
        let pattern = format!("{}b", "a*".repeat(12));
        let mut spent = 0u64;
        let mut m = Matcher::new(subject.as_bytes(), pattern.as_bytes(), |n| {
            spent += n;
            if spent > 1_000_000 {
                Err("limit")
            } else {
                Ok(())
            }
        });
        assert!(matches!(m.match_at(0), Err(Fail::Limit("limit"))));
    }
}
