//! Random edits of source text for property tests: insert, delete or replace at a position
//! (taken modulo the text's length, moved back to a character boundary).

#![allow(dead_code)] // each test uses the edits it needs

/// One edit; fragments are indices into the caller's fragment list.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Insert fragment `.1` at `.0`.
    Insert(usize, usize),
    /// Delete up to `.1` bytes at `.0`.
    Delete(usize, usize),
    /// Replace up to `.1` bytes at `.0` with fragment `.2`.
    Replace(usize, usize, usize),
}

/// `src` with `edits` applied in order.
pub fn apply(src: &str, edits: &[Edit], fragments: &[&str]) -> String {
    let mut s = src.to_string();
    let clamp = |s: &str, at: usize| {
        let mut i = at % (s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for e in edits {
        match *e {
            Edit::Insert(at, f) => {
                let i = clamp(&s, at);
                s.insert_str(i, fragments[f]);
            }
            Edit::Delete(at, n) | Edit::Replace(at, n, _) => {
                let i = clamp(&s, at);
                let j = clamp(&s, i + n).max(i);
                s.replace_range(i..j, "");
                if let Edit::Replace(_, _, f) = *e {
                    s.insert_str(i, fragments[f]);
                }
            }
        }
    }
    s
}
