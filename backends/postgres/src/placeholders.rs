//! SQLite's placeholders in the application's SQL, for PostgreSQL: `?` and
//! `?N` become `$N`, so the statements a README example runs on SQLite run
//! here unchanged. Text in quotes, dollar quotes and comments is left
//! alone, and so is a statement that already uses `$N` (where `?` may be
//! one of jsonb's operators).

/// How many parameters `sql` takes (its highest placeholder number), as it
/// will run here.
pub fn count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let dollar = uses_dollar_params(b);
    let mut i = 0;
    let mut highest = 0usize;
    while i < b.len() {
        if let Some(end) = skip_quoted(b, i) {
            i = end;
            continue;
        }
        let mark = if dollar { b'$' } else { b'?' };
        if b[i] == mark {
            let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            highest = if digits > 0 {
                highest.max(sql[i + 1..i + 1 + digits].parse().unwrap_or(usize::MAX))
            } else if dollar {
                highest
            } else {
                highest + 1
            };
            i += 1 + digits;
        } else {
            i += 1;
        }
    }
    highest
}

/// `sql` with SQLite's placeholders written as PostgreSQL's.
pub fn rewrite(sql: &str) -> String {
    let b = sql.as_bytes();
    if uses_dollar_params(b) {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut highest = 0u32;
    while i < b.len() {
        let c = b[i];
        if let Some(end) = skip_quoted(b, i) {
            out.push_str(&sql[i..end]);
            i = end;
        } else if c == b'?' {
            let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
            let n = if digits > 0 {
                sql[i + 1..i + 1 + digits].parse().unwrap_or(u32::MAX)
            } else {
                highest + 1
            };
            highest = highest.max(n);
            out.push('$');
            out.push_str(&n.to_string());
            i += 1 + digits;
        } else {
            let len = utf8_len(c);
            out.push_str(&sql[i..i + len]);
            i += len;
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Does the statement have a `$N` placeholder outside quotes?
fn uses_dollar_params(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if let Some(end) = skip_quoted(b, i) {
            i = end;
        } else if b[i] == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return true;
        } else {
            i += 1;
        }
    }
    false
}

/// If a quoted part or a comment starts at `i`, where it ends.
fn skip_quoted(b: &[u8], i: usize) -> Option<usize> {
    let find = |from: usize, pat: &[u8]| {
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(b.len(), |p| from + p + pat.len())
    };
    match b[i] {
        q @ (b'\'' | b'"') => {
            // '' and "" inside are escapes: they close and reopen.
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                j += 1;
            }
            Some((j + 1).min(b.len()))
        }
        b'-' if b.get(i + 1) == Some(&b'-') => Some(find(i, b"\n")),
        b'/' if b.get(i + 1) == Some(&b'*') => Some(find(i + 2, b"*/")),
        b'$' => {
            // $tag$ ... $tag$ (the tag may be empty).
            let tag_len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if b.get(i + 1 + tag_len) != Some(&b'$') || b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                return None;
            }
            let tag = &b[i..i + 2 + tag_len];
            Some(find(i + tag.len(), tag))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn sqlite_placeholders_become_postgres_ones() {
        assert_eq!(
            rewrite("INSERT INTO t (a, b) VALUES (?1, ?2)"),
            "INSERT INTO t (a, b) VALUES ($1, $2)"
        );
        assert_eq!(rewrite("SELECT ?, ?, ?5, ?"), "SELECT $1, $2, $5, $6");
        assert_eq!(
            rewrite("SELECT '?', \"a?\", ? -- why?\n, $$ ? $$, /* ? */ ?"),
            "SELECT '?', \"a?\", $1 -- why?\n, $$ ? $$, /* ? */ $2"
        );
        assert_eq!(rewrite("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
        // A statement written for PostgreSQL is left alone (jsonb's `?`).
        assert_eq!(
            rewrite("SELECT doc ? 'k' FROM t WHERE id = $1"),
            "SELECT doc ? 'k' FROM t WHERE id = $1"
        );
        assert_eq!(rewrite("SELET é, ?"), "SELET é, $1");
        assert_eq!(super::count("SELECT ?, ?, ?5, ?"), 6);
        assert_eq!(super::count("SELECT '?' , ?2"), 2);
        assert_eq!(super::count("SELECT $3 ? 'k'"), 3);
        assert_eq!(super::count("SELECT 1"), 0);
    }
}
