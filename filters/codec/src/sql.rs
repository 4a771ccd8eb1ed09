//! The statement classifier shared by the MySQL and PostgreSQL codecs: the first keyword of a
//! statement, after whitespace and comments. Only `SELECT`, `INSERT`, `UPDATE` and `DELETE` are
//! named; everything else (`WITH`, `(SELECT`, `BEGIN`, MySQL's `/*! ... */` executable comments,
//! an unterminated comment, text that is cut) is [`StatementKind::Other`]: never guessed.

/// The kind of a statement, from its first keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatementKind {
    /// `SELECT ...`
    Select,
    /// `INSERT ...`
    Insert,
    /// `UPDATE ...`
    Update,
    /// `DELETE ...`
    Delete,
    /// Anything else, or not sure.
    #[default]
    Other,
}

impl StatementKind {
    /// Every kind, in label order.
    pub const ALL: [StatementKind; 5] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Other,
    ];

    /// Lower-case name, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Other => "other",
        }
    }

    /// The index in [`StatementKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A compact form for per-connection tables.
    pub(crate) const fn from_index(i: u8) -> StatementKind {
        match i {
            0 => StatementKind::Select,
            1 => StatementKind::Insert,
            2 => StatementKind::Update,
            3 => StatementKind::Delete,
            _ => StatementKind::Other,
        }
    }
}

/// Classifies a statement by its first keyword (`text` may be only the start of it).
pub fn classify(text: &[u8]) -> StatementKind {
    let mut i = 0;
    loop {
        match text.get(i..) {
            Some([b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, ..]) => i += 1,
            Some([b'-', b'-', ..]) => match text[i..].iter().position(|&b| b == b'\n') {
                Some(n) => i += n + 1,
                None => return StatementKind::Other,
            },
            // `/*!` is a MySQL executable comment: its content runs, so it is not skipped.
            Some([b'/', b'*', b'!', ..]) => return StatementKind::Other,
            Some([b'/', b'*', ..]) => match text[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(n) => i += 2 + n + 2,
                None => return StatementKind::Other,
            },
            _ => break,
        }
    }
    let rest = &text[i.min(text.len())..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    // A keyword must be followed by something that is not part of an identifier, or be cut
    // by the end of the text (`SELECT` alone is a whole statement).
    if let Some(&b) = rest.get(end) {
        if b.is_ascii_digit() || b == b'_' || b == b'$' || b >= 0x80 {
            return StatementKind::Other;
        }
    }
    let word = &rest[..end];
    if word.eq_ignore_ascii_case(b"select") {
        StatementKind::Select
    } else if word.eq_ignore_ascii_case(b"insert") {
        StatementKind::Insert
    } else if word.eq_ignore_ascii_case(b"update") {
        StatementKind::Update
    } else if word.eq_ignore_ascii_case(b"delete") {
        StatementKind::Delete
    } else {
        StatementKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatementKind::*;

    #[test]
    fn first_keyword_only() {
        for (sql, k) in [
            (&b"SELECT 1"[..], Select),
            (b"  select\n*", Select),
            (b"select", Select),
            (b"-- c\nINSERT INTO t VALUES (1)", Insert),
            (b"/* a */ /**/UPDATE t SET a=1", Update),
            (b"delete from t", Delete),
            (b"deleted", Other),
            (b"select1", Other),
            (b"select_x", Other),
            (b"WITH x AS (SELECT 1) SELECT * FROM x", Other),
            (b"(SELECT 1)", Other),
            (b"/*!40101 SELECT 1 */", Other),
            (b"/* never ends SELECT", Other),
            (b"-- only a comment", Other),
            (b"", Other),
            (b"BEGIN", Other),
            (b"sel", Other),
        ] {
            assert_eq!(classify(sql), k, "{:?}", String::from_utf8_lossy(sql));
        }
    }
}
